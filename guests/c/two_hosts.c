#include <stdio.h>
#include "lab.h"

static const char *const KINDS[] = {"denied", "invalid", "exists", "not-found", "quota", "os"};

// Turn a WIT error into run's error string (every variant holds a string).
static bool fail(nsw_lab_types_error_t *e, lab_string_t *out) {
    char text[512];
    snprintf(text, sizeof text, "%s: %.*s", KINDS[e->tag], (int)e->val.os.len, (const char *)e->val.os.ptr);
    nsw_lab_types_error_free(e);
    lab_string_dup(out, text);
    return false;
}

bool exports_lab_run(lab_list_string_t *args, lab_string_t *out) {
    lab_list_string_free(args);
    setvbuf(stdout, NULL, _IOLBF, 0);
    nsw_lab_types_error_t err;
    nsw_lab_types_own_netns_t host = nsw_lab_topology_host(), a;
    nsw_lab_topology_tuple2_own_link_own_link_t pair;
    lab_string_t s1, s2;

    lab_string_set(&s1, "a");
    if (!nsw_lab_topology_create_netns(&s1, &a, &err)) return fail(&err, out);
    lab_string_set(&s1, "eth0");
    lab_string_set(&s2, "a-eth0");
    if (!nsw_lab_topology_create_veth(&s1, nsw_lab_types_borrow_netns(a), &s2, nsw_lab_types_borrow_netns(host), &pair, &err))
        return fail(&err, out);
    nsw_lab_types_borrow_link_t inside = nsw_lab_types_borrow_link(pair.f0), outside = nsw_lab_types_borrow_link(pair.f1);
    lab_string_set(&s1, "192.168.7.2/24");
    if (!nsw_lab_address_add(inside, &s1, &err)) return fail(&err, out);
    lab_string_set(&s1, "192.168.7.1/24");
    if (!nsw_lab_address_add(outside, &s1, &err)) return fail(&err, out);
    if (!nsw_lab_topology_set_up(inside, &err) || !nsw_lab_topology_set_up(outside, &err)) return fail(&err, out);

    nsw_lab_probe_ping_options_t options = {.count = 3, .timeout_ms = 1000};
    nsw_lab_probe_ping_stats_t stats;
    lab_string_set(&s1, "192.168.7.2");
    if (!nsw_lab_probe_ping(nsw_lab_types_borrow_netns(host), &s1, &options, &stats, &err)) return fail(&err, out);
    printf("%u/%u replies\n", stats.received, stats.sent);
    return true;
}
