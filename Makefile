# The two commands of the README. Both set up .venv on first use.
.PHONY: run test

run:
	@scripts/run

test:
	@scripts/test
