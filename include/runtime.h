/* runtime: find the language runtimes installed on this VM and resolve a
 * blueprint's `runtime` against them.
 *
 *   struct runtime *rt = runtime_new(getenv("PATH"));
 *   struct runtime_pick pk;
 *   if (runtime_resolve(rt, "python", "3.11", &pk, err, sizeof(err)) < 0)
 *       ... err: "runtime python 3.12 not installed (found python 3.11.2
 *                 at /usr/bin/python3)"
 *   ... pk.version "3.11.2", pk.path "/usr/bin/python3" ...
 *
 * Detection, per type, the first time it is asked for (then cached until
 * runtime_refresh): every directory of the search path, in order, is listed
 * for the type's program names, each optionally followed by a version
 * suffix of digits and dots:
 *
 *   type     names                 probe (stdout and stderr read together)
 *   python   python3 python3.N     python3 --version  "Python 3.11.2"
 *   nodejs   node nodejs nodeN     node --version     "v20.11.1"
 *   java     java                  java -version      'openjdk version "17.0.15" ...'
 *   php      php phpN.N            php --version      "PHP 8.2.7 (cli) ..."
 *   ruby     ruby rubyN.N          ruby --version     "ruby 3.1.2p20 (...)"
 *   golang   go go1.N.N            go version         "go version go1.19.8 linux/amd64"
 *   dotnet   dotnet                dotnet --version   "8.0.100"
 *   docker   docker podman         X --version        "Docker version 24.0.7, build ..."
 *   static   (nothing: always resolves, with no program)
 *
 * Each regular executable file found (the same file reached by two names
 * is probed once, under the first name) is run by argv with PATH set to the
 * search path and LC_ALL=C, under a 5 s deadline, through run(), which
 * BLOCKS: detection belongs at agent start or in a deploy's own process,
 * not in the middle of the loop. Java's old "1.8.0_392" reads as 8.0.392.
 * A program that fails or prints no version is skipped.
 *
 * Version requests are prefixes of dotted components: "3.11" matches
 * 3.11.2 and 3.11, not 3.1.x or 3.110.x. Among matches the highest version
 * wins; with no version asked for, the first program found under the
 * type's plain name (python3, node, ...) wins, else the highest version.
 */
#ifndef DPLOYR_RUNTIME_H
#define DPLOYR_RUNTIME_H

#include <stddef.h>

struct runtime;

/* A resolved runtime. Strings are owned by the struct runtime and stay
 * valid until runtime_refresh or runtime_free; both NULL for static. */
struct runtime_pick {
	const char *type;    /* canonical type name ("python") */
	const char *version; /* full version ("3.11.2") */
	const char *path;    /* the program as found on the search path */
};

/* search_path: a PATH-style list of directories (NULL or "": none). */
struct runtime *runtime_new(const char *search_path);
void runtime_free(struct runtime *rt);
/* Forget what was detected: the next question probes again. */
void runtime_refresh(struct runtime *rt);

/* 1 if type is one of the blueprint's runtime types, else 0. */
int runtime_type_known(const char *type);

/* Resolve type and version (NULL: any) into *pick. -1 with a reason in err:
 * an unknown type, a malformed version, or the runtime not installed
 * (naming what is installed of that type). */
int runtime_resolve(struct runtime *rt, const char *type, const char *version,
		    struct runtime_pick *pick, char *err, size_t errlen);

/* The i-th installed runtime of type (detection order), for status
 * reports: 1 with *pick filled in, 0 past the end or for an unknown type. */
int runtime_installed(struct runtime *rt, const char *type, size_t i, struct runtime_pick *pick);

/* Parse a probe's output for type into "X.Y.Z" (at most 4 components).
 * 0, or -1 if no version is found where the type's format puts it. */
int runtime_parse_version(const char *type, const char *out, char *version, size_t len);
/* 1 if version (dotted) starts with the components of prefix, else 0. */
int runtime_version_match(const char *prefix, const char *version);

#endif
