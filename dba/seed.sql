-- demo markets (filled in by the exchange core)
select 1;
