"""Lua 5.4 host for the site script scrun.lua."""
