# The two commands of the README (run, test), and the demo. Each sets up .venv on first use.
.PHONY: run test demo

run:
	@scripts/run

test:
	@scripts/test

demo:
	@scripts/bootstrap run
	@.venv/bin/polaris demo
