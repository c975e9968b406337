drop table if exists bj.void_shortfalls cascade;
