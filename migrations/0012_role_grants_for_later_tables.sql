-- Up Migration

-- The per-role grants (0008) for the tables of scarce campaigns (0010), which came beside it
-- (operator accounts grant their own, in 0007). A table without a grant is the superuser's alone:
-- `sabt draw commit|run|release` are operator commands.
--
-- status: the dashboard, the public campaign pages and the status API read draws, allocations
-- and releases.
GRANT SELECT ON draws, allocations, releases TO sabt_status;

-- checker: a scarce campaign's verdict callback carries the allocation.
GRANT SELECT ON draws, allocations TO sabt_checker;

-- Down Migration
REVOKE ALL ON draws, allocations, releases FROM sabt_status, sabt_checker;
