-- Project staging script: copy the rootfs into a per-job directory with rsync, point the
-- container at the copy, and remove the copy after the step. Mirrors the man page's example.
local json = require 'json'

local function read_file(path)
	local f = assert(io.open(path, "rb"))
	local text = f:read("a")
	f:close()
	return text
end

local function write_file(path, text)
	local f = assert(io.open(path, "wb"))
	f:write(text)
	f:close()
end

local stage_root = "/tmp/scrun-stage"  -- tests replace this path

function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
	local config = json.decode(read_file(config_file))
	local src = config.root.path
	if string.sub(src, 1, 1) ~= "/" then src = bundle .. "/" .. src end
	local dst_bundle = string.format("%s/job-%d-%s", stage_root, job_id, id)
	local dst_rootfs = dst_bundle .. "/rootfs"
	local st, out = slurm.allocator_command("mkdir -p " .. dst_rootfs)
	if st ~= 0 then
		slurm.log_error("mkdir failed: %s", out)
		return slurm.ERROR
	end
	st, out = slurm.allocator_command(string.format("rsync -a --exclude proc --exclude sys -- %s/ %s/", src, dst_rootfs))
	if st ~= 0 then
		slurm.log_error("rsync failed: %s", out)
		return slurm.ERROR
	end
	-- The engine's bind-mounted files (/etc/hosts, resolv.conf, hostname) live on the login node:
	-- copied into the rootfs, as the man page's example does; its /dev/shm becomes the node's own.
	local mounts = {}
	for _, m in ipairs(config.mounts or {}) do
		local src_m = m.source or ""
		local local_bind = m.type == "bind" and (string.match(src_m, "^/run/") or string.match(src_m, "^/var/"))
		if local_bind and m.destination == "/dev/shm" then
			table.insert(mounts, {destination = "/dev/shm", type = "tmpfs", source = "shm", options = {"nosuid", "nodev", "mode=1777"}})
		elseif local_bind then
			slurm.allocator_command(string.format("cp -a -- %s %s%s", src_m, dst_rootfs, m.destination))
		else
			table.insert(mounts, m)
		end
	end
	config.mounts = mounts
	-- A marker only the staged copy has: proves the step runs from it.
	write_file(dst_rootfs .. "/staged-by-lua", string.format("job %d env entries %d first %s\n", job_id, #job_env, job_env[1] ~= nil and "set" or "nil"))
	config.root.path = dst_rootfs
	write_file(dst_bundle .. "/config.json", json.encode(config))
	slurm.set_bundle_path(dst_bundle)
	slurm.set_root_path(dst_rootfs)
	slurm.log_info("staged %s to %s", id, dst_bundle)
	return slurm.SUCCESS
end

function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id)
	if bundle == orig_bundle then return slurm.SUCCESS end
	-- Commands see scrun's output variables, with SCRUN_BUNDLE already the staged bundle.
	slurm.allocator_command(string.format('printf "%%s" "$SCRUN_BUNDLE" > %s.bundle-seen', stage_root))
	local st, out = slurm.allocator_command(string.format("rm -rf -- %s", bundle))
	if st ~= 0 then slurm.log_error("cleanup failed: %s", out) end
	return slurm.SUCCESS
end

return slurm.SUCCESS
