"""Real local infrastructure for the tests and the benchmarks alike: free ports, a project copy
run as a user runs it (`project`), the service under gunicorn (`server`), a PostgreSQL server
(`postgres`) and a Spark standalone cluster (`spark_cluster`), each started as separate
processes and stopped by process id. Neither `tests/` nor `benchmarks/` imports the other."""
