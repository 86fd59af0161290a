from edge_dfd.cli import run

run()
