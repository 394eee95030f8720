-- A staging scrun.lua for the development cluster's tests (installed as
-- /etc/slurm/staging-example.lua by tools/devcluster.py; the cluster itself stages with scrun.conf's
-- StageDir and has no scrun.lua). Its compute nodes do not see the login node's disks: every
-- container's rootfs is copied onto the shared /scratch, into a fresh private directory
-- (mktemp: nobody can make it first), and the container pointed at the copy.
local json = require 'json'

local stage_dir = "/scratch/scrun"  -- 1777, like a site's scratch

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

local function is_bind(m)
	if m.type == "bind" then return true end
	for _, o in ipairs(m.options or {}) do
		if o == "bind" or o == "rbind" then return true end
	end
	return false
end

function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
	local text, err = read_file(config_file)
	if not text then
		slurm.log_error("cannot read %s: %s", config_file, err)
		return slurm.ERROR
	end
	local config = json.decode(text)
	local src = config.root.path
	if string.sub(src, 1, 1) ~= "/" then src = bundle .. "/" .. src end
	-- 0700 and the caller's (mktemp). A root container with uid mappings is reached on the node
	-- by its mapped root: its bundle directory becomes that uid's, and nobody else's.
	local st, out = slurm.allocator_command("mktemp -d " .. quote(stage_dir .. "/lua-" .. id .. "-XXXXXX"))
	if st ~= 0 then
		slurm.log_error("cannot make a directory in %s: %s", stage_dir, out)
		return slurm.ERROR
	end
	local dst_bundle = string.gsub(out, "%s+$", "")
	if user_id == 0 and has_uid_mappings(config) then
		local uid, gid = mapped_root(config)
		st, out = slurm.allocator_command(string.format("chown %d:%d %s", uid, gid, quote(dst_bundle)))
		if st ~= 0 then
			slurm.log_error("cannot hand %s to the mapped root: %s", dst_bundle, out)
			return slurm.ERROR
		end
	end
	local dst_rootfs = dst_bundle .. "/rootfs"
	-- As root of the user namespace: ownership inside the image is kept (--numeric-ids).
	st, out = slurm.allocator_command(string.format(
		"rsync -a --numeric-ids --exclude=/proc --exclude=/sys -- %s/ %s/", quote(src), quote(dst_rootfs)))
	if st ~= 0 then
		slurm.log_error("staging %s failed: %s", src, out)
		slurm.allocator_command("rm -rf --one-file-system -- " .. quote(dst_bundle))
		return slurm.ERROR
	end
	config.root.path = dst_rootfs
	-- The engine's bind-mounted files (/etc/hosts, resolv.conf, hostname: under /run or /var) are
	-- on the login node: copied beside the rootfs; its /dev/shm directory becomes a fresh tmpfs.
	local kept = {}
	for i, m in ipairs(config.mounts or {}) do
		local source = m.source or ""
		local login_local = is_bind(m) and (string.sub(source, 1, 5) == "/run/" or string.sub(source, 1, 5) == "/var/")
		if login_local and m.destination == "/dev/shm" then
			m = {destination = "/dev/shm", type = "tmpfs", source = "shm", options = {"nosuid", "noexec", "nodev", "mode=1777"}}
		elseif login_local then
			local copy = string.format("%s/mount-%d", dst_bundle, i)
			st, out = slurm.allocator_command(string.format("cp -- %s %s", quote(source), quote(copy)))
			if st ~= 0 then
				slurm.log_error("cannot copy %s (mounts[%d]): %s", source, i - 1, out)
				slurm.allocator_command("rm -rf --one-file-system -- " .. quote(dst_bundle))
				return slurm.ERROR
			end
			m.source = copy
		end
		table.insert(kept, m)
	end
	if config.mounts then config.mounts = kept end
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
