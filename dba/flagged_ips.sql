-- Addresses that opened the most accounts allowed within one window: review them.
--   psql "$(make -s dburl)" -f dba/flagged_ips.sql
select * from admin.flagged_ips order by last_signup desc;
