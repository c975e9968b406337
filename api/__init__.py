"""BetJee's HTTP layer: forwards RPC calls to the SQL functions of schema `api`."""
