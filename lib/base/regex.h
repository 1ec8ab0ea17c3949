/* regex.h - a small regular-expression matcher whose work is bounded.
 *
 * Used for the =~ / !~ label matchers of the server's selectors, where the
 * pattern comes from any client: glibc's regexec backtracks, and a pattern
 * such as ((a{1,100}){1,100}){1,100}b could run for hours and take gigabytes.
 * Here a pattern is compiled to a Thompson NFA whose size is capped
 * (HM_REGEX_MAX_INSTS instructions after {m,n} expansion; larger patterns
 * are refused as "too complex"), and matched by a lazily built DFA whose
 * cache has a fixed memory budget (flushed when full), so a match costs
 * O(len(text) x program size) at worst and O(len(text)) usually, with
 * bounded memory; the uncached work of all matches of one compiled regex
 * is capped as well, so many long values cannot add up without bound.
 *
 * Syntax (the RE2 / Prometheus subset): literals, '.', [...] classes (ranges,
 * negation, [:alpha:]-style names, \d \w \s \D \W \S), ^ $, | alternation,
 * (...) and (?:...) groups, * + ? and {n} {n,} {n,m} (counts up to 1000), a
 * leading (?i) for ASCII case folding, and \ escapes of punctuation and
 * \t \n \r \f \v. Matching is of the whole text (implicitly anchored, as
 * Prometheus does) and '.' also matches a newline. Text is read as UTF-8
 * (an invalid byte counts as one character). Not supported (refused):
 * backreferences, \b, lazy quantifiers, lookaround. */
#ifndef HOMURA_REGEX_H
#define HOMURA_REGEX_H

#include <stddef.h>

#define HM_REGEX_MAX_PATTERN 4096   /* bytes of pattern text */
#define HM_REGEX_MAX_INSTS 4096     /* compiled program size */
#define HM_REGEX_MAX_REPEAT 1000    /* n and m in {n,m} */
/* NFA thread steps outside the DFA cache, summed over every match of one
 * compiled regex (about a second of CPU at worst): past it matching fails. */
#define HM_REGEX_MAX_WORK 20000000ull

typedef struct hm_regex hm_regex;

/* Compile pattern; HM_EINVAL (message set) when it is malformed or too
 * complex, HM_ENOMEM. */
int hm_regex_compile(const char *pattern, hm_regex **out);
/* 1 when the whole of s[0..len) matches, else 0; HM_EINVAL (message set)
 * once this regex has used up HM_REGEX_MAX_WORK, for this and every later
 * call. Not thread-safe for one hm_regex (the DFA cache is updated);
 * compile one per thread. */
int hm_regex_match(hm_regex *re, const char *s, size_t len);
void hm_regex_free(hm_regex *re);

#endif
