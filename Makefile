# natsfs: build, test, demo, bench. `make test` installs whatever is missing first (Debian packages as
# root, node_modules), so it works on a fresh Debian 12 machine.
.PHONY: all deps build test demo bench docs clean compose-test up down logs ps ca-backup

all: build

deps:
	bash scripts/ensure-deps.sh

build:
	npx tsc -p .

# Installs what is missing, builds, then runs every test group (scripts/run-tests.sh GROUP... for some).
test: deps build
	bash scripts/run-tests.sh

# Everything locally in the foreground: nats-server, a server exporting demo/export, a mount at demo/mnt.
demo: deps build
	node dist/cli/main.js demo

# Benchmarks are slow and machine-dependent: never part of `make test`. natsfs against sshfs, the local
# disk, the bus and the FUSE adapter in one table (45 min on a loaded machine; BENCH_QUICK=1 for a few minutes,
# BENCH_* variables in test/bench/lib/config.ts); installs fio, sshfs and openssh-server when missing.
bench: deps build
	bash scripts/run-bench.sh

# The compose appliance (scripts/compose.sh): Docker where its engine answers, else rootful podman with
# local stand-in base images. Settings: NATSFS_DATA=DIR SERVERS=N CLUSTER=1 GRAFANA=1 (see the script).
up:
	bash scripts/compose.sh up

down:
	bash scripts/compose.sh down

logs:
	bash scripts/compose.sh logs

ps:
	bash scripts/compose.sh ps

# NATSFS_DATA/pki (the CA key too) into ./natsfs-ca-TIME.tar.gz, mode 600.
ca-backup:
	bash scripts/compose.sh ca-backup

# The compose appliance end to end under rootful podman (also the `compose` group of `make test`).
compose-test:
	bash scripts/compose-test.sh

# The README's metric table, generated from the registries (test/metrics-readme.test.ts checks it).
docs:
	node --import tsx scripts/readme-metrics.ts

# --one-file-system: never descend into a demo mount that is still live.
clean:
	rm -rf --one-file-system dist demo
