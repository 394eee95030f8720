-- A site's staging script that uses scrun's image cache (slurm.cache_image): only the bundle's
-- config.json and the engine's login-local files are copied; the rootfs comes from the cache.
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
	local dst = string.format("%s/job-%d-%s", stage_root, job_id, id)
	local st, out = slurm.allocator_command("mkdir -p -m 0700 " .. dst .. "/files")
	if st ~= 0 then
		slurm.log_error("mkdir failed: %s", out)
		return slurm.ERROR
	end
	local config = json.decode(read_file(config_file))
	-- The engine's bind-mounted files (/etc/hosts, resolv.conf, hostname) live on the login node.
	local mounts = {}
	for i, m in ipairs(config.mounts or {}) do
		local src = m.source or ""
		local local_bind = m.type == "bind" and (string.match(src, "^/run/") or string.match(src, "^/var/"))
		if local_bind and m.destination == "/dev/shm" then
			table.insert(mounts, {destination = "/dev/shm", type = "tmpfs", source = "shm", options = {"nosuid", "nodev", "mode=1777"}})
		elseif local_bind then
			local copy = string.format("%s/files/%d", dst, i)
			slurm.allocator_command(string.format("cp -a -- %s %s", src, copy))
			m.source = copy
			table.insert(mounts, m)
		else
			table.insert(mounts, m)
		end
	end
	config.mounts = mounts
	write_file(dst .. "/config.json", json.encode(config))
	local rootfs, why = slurm.cache_image(dst .. "/config.json", dst .. "/upper")
	if not rootfs then
		slurm.log_error("slurm.cache_image: %s", why)
		return slurm.ERROR
	end
	slurm.set_bundle_path(dst)
	slurm.set_root_path(rootfs)
	return slurm.SUCCESS
end

function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id)
	if bundle == orig_bundle then
		return slurm.SUCCESS
	end
	slurm.allocator_command("chmod -R u+rwx -- " .. bundle .. "/upper; rm -rf -- " .. bundle)
	return slurm.SUCCESS
end
