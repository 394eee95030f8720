-- scrun.lua of the development cluster (installed next to slurm.conf by tools/devcluster.py).
--
-- Rootless podman mounts a container's rootfs in its own mount namespace, which slurmd does
-- not see: this script copies such a rootfs where the nodes can read it, and points the
-- container at the copy. Root podman's storage is on this host already, so root's
-- containers run in place, except with uid mappings (--uidmap): the node's runtime mounts
-- the rootfs as the mapped root, which podman 5's storage (0700 per container) keeps out.
-- A real site would stage onto a filesystem its nodes share.
local json = require 'json'

-- /run/user/<uid> is the user's own (made at login by pam_systemd, or by devcluster here).
local scratch = "/run/user/%d/scrun-stage/%s"
-- root's copies: /run/scrun-stage is 0711 (nobody lists it), each copy 0700 (see stage_in).
local root_scratch = "/run/scrun-stage/%s"

local function read_file(path)
	local f, err = io.open(path, "rb")
	if not f then return nil, err end
	local text = f:read("a")
	f:close()
	return text
end

local function write_file(path, text)
	local f, err = io.open(path, "wb")
	if not f then return nil, err end
	f:write(text)
	f:close()
	return true
end

local function quote(s)
	return "'" .. string.gsub(s, "'", "'\\''") .. "'"
end

local function has_uid_mappings(config)
	return config.linux ~= nil and config.linux.uidMappings ~= nil and #config.linux.uidMappings > 0
end

-- The host uid/gid the container's root is mapped to (uid mappings: containerID 0 → hostID).
local function mapped_root(config)
	local uid, gid = 0, 0
	for _, m in ipairs(config.linux.uidMappings or {}) do
		if m.containerID == 0 then uid = m.hostID end
	end
	for _, m in ipairs(config.linux.gidMappings or {}) do
		if m.containerID == 0 then gid = m.hostID end
	end
	return math.floor(uid), math.floor(gid)
end

function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
	local text, err = read_file(config_file)
	if not text then
		slurm.log_error("cannot read %s: %s", config_file, err)
		return slurm.ERROR
	end
	local config = json.decode(text)
	if user_id == 0 and not has_uid_mappings(config) then
		return slurm.SUCCESS
	end
	local src = config.root.path
	if string.sub(src, 1, 1) ~= "/" then src = bundle .. "/" .. src end
	-- Every copy is private: 0700 all the way (mkdir -p -m sets the last directory only, so
	-- each level is made on its own). A root container with uid mappings is reached on the node
	-- by its mapped root: its bundle directory is that uid's, 0700, and nobody else's.
	local dst_bundle, make
	if user_id == 0 then
		dst_bundle = string.format(root_scratch, id)
		local uid, gid = mapped_root(config)
		make = string.format("install -d -m 0711 -o 0 -g 0 /run/scrun-stage && install -d -m 0700 -o %d -g %d %s",
			uid, gid, quote(dst_bundle))
	else
		dst_bundle = string.format(scratch, math.floor(user_id), id)
		make = string.format("umask 077 && mkdir -p %s", quote(dst_bundle))
	end
	local dst_rootfs = dst_bundle .. "/rootfs"
	local st, out = slurm.allocator_command(make)
	if st ~= 0 then
		slurm.log_error("cannot make %s: %s", dst_rootfs, out)
		return slurm.ERROR
	end
	-- As root of the user namespace: ownership inside the image is kept (--numeric-ids).
	st, out = slurm.allocator_command(string.format(
		"rsync -a --numeric-ids --exclude=/proc --exclude=/sys -- %s/ %s/", quote(src), quote(dst_rootfs)))
	if st ~= 0 then
		slurm.log_error("staging %s failed: %s", src, out)
		slurm.allocator_command("rm -rf --one-file-system -- " .. quote(dst_bundle))
		return slurm.ERROR
	end
	config.root.path = dst_rootfs
	-- Hooks run through /proc/<pid>/ (docker's libnetwork-setkey) name a process of this host.
	if config.hooks then
		for stage, hooks in pairs(config.hooks) do
			local kept = setmetatable({}, getmetatable(hooks))
			for _, hook in ipairs(hooks) do
				if string.sub(hook.path or "", 1, 6) ~= "/proc/" then table.insert(kept, hook) end
			end
			config.hooks[stage] = kept
		end
	end
	-- The container's environment (secrets included) is in config.json: 0600, before it is written.
	slurm.allocator_command(string.format("umask 077 && : > %s/config.json", quote(dst_bundle)))
	local ok, werr = write_file(dst_bundle .. "/config.json", json.encode(config))
	if not ok then
		slurm.log_error("cannot write %s/config.json: %s", dst_bundle, werr)
		return slurm.ERROR
	end
	slurm.set_bundle_path(dst_bundle)
	slurm.set_root_path(dst_rootfs)
	slurm.log_debug("staged %s to %s", src, dst_bundle)
	return slurm.SUCCESS
end

function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id)
	if bundle == orig_bundle then
		return slurm.SUCCESS
	end
	local st, out = slurm.allocator_command("rm -rf --one-file-system -- " .. quote(bundle))
	if st ~= 0 then
		slurm.log_error("cannot remove %s: %s", bundle, out)
	end
	return slurm.SUCCESS
end

return slurm.SUCCESS
