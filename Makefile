# The two commands of the README (run, test), the demo, and the docs' console screenshots.
# Each sets up .venv on first use.
.PHONY: run test demo screenshots

run:
	@scripts/run

test:
	@scripts/test

demo:
	@scripts/bootstrap run
	@.venv/bin/polaris demo

screenshots:
	@scripts/screenshots
