/* fuzz_selector.c - the label selector parser (hm_selector_parse:
 * type{k="v", k!="v", k=~"re", k!~"re"}) on any text, and matching what it
 * accepts against a few series. */
#include "fuzz.h"
#include "store/store.h"

static const hm_series_info series[] = {
	{1, "process_cpu", 2, {{"service_name", "api"}, {"version", "1.0"}}, 0, 0},
	{2, "wall", 1, {{"service_name", "worker"}}, 0, 0},
	{3, "memory", 0, {{0}}, 0, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = strndup((const char *)data, size);
	if (!text)
		return 0;
	hm_selector sel;
	if (hm_selector_parse(text, &sel) == 0) {
		FUZZ_ASSERT(sel.n <= HM_STORE_MAX_MATCHERS);
		FUZZ_ASSERT(!sel.type || hm_store_label_name_ok(sel.type));
		for (uint32_t i = 0; i < sel.n; i++)
			FUZZ_ASSERT(hm_store_label_name_ok(sel.m[i].name) &&
				    strlen(sel.m[i].value) <= HM_STORE_MAX_VALUE);
		for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
			hm_selector_match(&sel, &series[i]);
		hm_selector_free(&sel);
	}
	free(text);
	return 0;
}
