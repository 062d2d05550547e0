#!/usr/bin/env bash
# careloop's offline FHIR R4 (4.0.1) validator (HAPI FHIR's instance validator; see
# src/main/java/careloop/fhirvalidator/Validate.java for what it checks and prints).
#
#   deploy/tools/fhir-validator/run.sh FILE...   validate each file (a resource, or a JSON array of
#                                                resources; - is stdin): one JSON report on stdout; exit 0
#                                                when nothing is an error, 1 when something is, 2 when an
#                                                input cannot be read, 3 when the validator cannot be had
#   deploy/tools/fhir-validator/run.sh build     build it if it is not cached yet (prints nothing then)
#   deploy/tools/fhir-validator/run.sh path      print the cache directory of this source
#
# The first run builds the jar and copies its dependencies with Maven into a cache outside the
# repository, keyed by a hash of pom.xml and the source, so a fresh clone reuses it:
#   ${XDG_CACHE_HOME:-~/.cache}/careloop/fhir-validator/<hash>/   (fhir-validator.jar, lib/)
# Maven's local repository is there too (fhir-validator/m2/). Cold, that is a download of about 150 MB
# from Maven Central; warm, only Java is needed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${CARELOOP_FHIR_VALIDATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/careloop/fhir-validator}"

die() {
	echo "deploy/tools/fhir-validator/run.sh: $*" >&2
	exit 3
}

source_hash() {
	(cd "$HERE" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
		sha256sum | cut -c1-16
}

BUILD_DIR="$CACHE_ROOT/$(source_hash)"

find_java() {
	local java
	if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
		java="$JAVA_HOME/bin/java"
	else
		java="$(command -v java)" || return 1
	fi
	# HAPI FHIR 8 needs Java 17 or newer.
	local version
	version="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
	[[ "${version%%.*}" =~ ^[0-9]+$ && "${version%%.*}" -ge 17 ]] || return 1
	echo "$java"
}

build() {
	[[ -f "$BUILD_DIR/fhir-validator.jar" ]] && return 0
	mkdir -p "$CACHE_ROOT"
	# One build at a time: make and pytest may both ask.
	exec 9>"$CACHE_ROOT/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
	if [[ -f "$BUILD_DIR/fhir-validator.jar" ]]; then
		exec 9>&-
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "Maven is needed once, to build the validator, and none was found.
Install Maven 3.8 or newer and a JDK 17 or newer (Debian: apt-get install -y maven openjdk-17-jdk-headless),
then run this again. It needs Maven Central on this first build only."
	local work start=$SECONDS
	work="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
	cp -R "$HERE/pom.xml" "$HERE/src" "$work/"
	echo "building the FHIR R4 validator into $BUILD_DIR (cached for next time)" >&2
	if ! (cd "$work" && nice -n 10 mvn -B -q -Dmaven.repo.local="$CACHE_ROOT/m2" package \
		>"$work/build.log" 2>&1); then
		tail -40 "$work/build.log" >&2
		die "'mvn package' failed (above; whole log in $work/build.log).
A cold build downloads HAPI FHIR and its dependencies from Maven Central; fix that and run this again."
	fi
	mkdir -p "$work/out"
	mv "$work/target/fhir-validator.jar" "$work/target/lib" "$work/out/"
	rm -rf "$BUILD_DIR"
	mv "$work/out" "$BUILD_DIR"
	rm -rf "$work"
	# Keep the three newest builds (another checkout may be on another source); each is about 150 MB.
	find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
		-printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
	echo "built the FHIR R4 validator in $((SECONDS - start)) s" >&2
	exec 9>&-
}

case "${1:-}" in
"" | -h | --help)
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 2
	;;
path) echo "$BUILD_DIR" ;;
build)
	find_java >/dev/null || die "Java 17 or newer is needed (on PATH or in JAVA_HOME) and was not found.
Install a JDK 17 or newer and Maven 3.8 or newer (Debian: apt-get install -y openjdk-17-jdk-headless maven)."
	build
	;;
*)
	java="$(find_java)" || die "Java 17 or newer is needed (on PATH or in JAVA_HOME) and was not found.
Install a JDK 17 or newer and Maven 3.8 or newer (Debian: apt-get install -y openjdk-17-jdk-headless maven)."
	build
	# The serial collector: one thread validates, and it starts and stops faster on two cores.
	exec "$java" -XX:+UseSerialGC -cp "$BUILD_DIR/fhir-validator.jar:$BUILD_DIR/lib/*" \
		careloop.fhirvalidator.Validate "$@"
	;;
esac
