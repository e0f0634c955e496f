// The pb-and-jelly lab from the tutorial, step for step, in C.
//
// The same lab, and the same progress, as guests/pbj (Rust):
//
//     nsw run pbj-c.wasm                                   # contained
//     nsw run pbj-c.wasm --allow host-net -- 203.0.113.1   # tutorial-exact
//
// bindings/ holds what `wit-bindgen c ../../wit --world lab` generated
// (scripts/build-c checks that it still matches the WIT).

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"

typedef nsw_lab_types_own_netns_t netns_t;
typedef nsw_lab_types_own_link_t link_t;

// The error `run` will return, as "kind: message".
static char failure[512];

static const char *const KINDS[] = {"denied", "invalid", "exists", "not-found", "quota", "os"};

// Every variant of the WIT error carries a string: keep it as the failure.
static bool fail_with(nsw_lab_types_error_t *err) {
    lab_string_t *text = &err->val.denied;
    snprintf(failure, sizeof failure, "%s: %.*s", KINDS[err->tag], (int)text->len, (const char *)text->ptr);
    nsw_lab_types_error_free(err);
    return false;
}

// Call an nsw import that reports errors through `err`; on failure, keep
// the message and return false from the calling function.
#define TRY(call)                  \
    do {                           \
        nsw_lab_types_error_t err; \
        if (!(call)) {             \
            return fail_with(&err);\
        }                          \
    } while (0)

static lab_string_t str(const char *s) {
    lab_string_t out;
    lab_string_set(&out, s);
    return out;
}

static nsw_lab_types_borrow_netns_t ns(netns_t h) { return nsw_lab_types_borrow_netns(h); }
static nsw_lab_types_borrow_link_t lk(link_t h) { return nsw_lab_types_borrow_link(h); }

static void step(int n, const char *what) { printf("step %2d: %s\n", n, what); }

// Ping until a reply comes back (3 tries), and insist on one.
static bool reach(netns_t source, const char *target, const char *what) {
    nsw_lab_probe_ping_options_t options = {.count = 1, .timeout_ms = 1000};
    nsw_lab_probe_ping_stats_t stats = {0};
    lab_string_t to = str(target);
    for (int i = 0; i < 3; i++) {
        TRY(nsw_lab_probe_ping(ns(source), &to, &options, &stats, &err));
        if (stats.received > 0) break;
    }
    if (stats.received == 0) {
        snprintf(failure, sizeof failure, "%s: no reply from %s after %u echo requests", what, target, stats.sent);
        return false;
    }
    printf("         %s: reply from %s in %.3f ms\n", what, target, stats.avg_ms);
    return true;
}

static bool build(const char *outside) {
    netns_t host = nsw_lab_topology_host();
    netns_t pb, jelly;
    nsw_lab_topology_tuple2_own_link_own_link_t pb_pair, jelly_pair;
    link_t brd1;
    lab_string_t s1, s2;

    step(1, "namespaces pb and jelly");
    s1 = str("pb");
    TRY(nsw_lab_topology_create_netns(&s1, &pb, &err));
    s1 = str("jelly");
    TRY(nsw_lab_topology_create_netns(&s1, &jelly, &err));

    step(2, "veth pairs veth-pb/bread-pb-veth and veth-jelly/bread-j-veth");
    s1 = str("veth-pb"), s2 = str("bread-pb-veth");
    TRY(nsw_lab_topology_create_veth(&s1, ns(host), &s2, ns(host), &pb_pair, &err));
    s1 = str("veth-jelly"), s2 = str("bread-j-veth");
    TRY(nsw_lab_topology_create_veth(&s1, ns(host), &s2, ns(host), &jelly_pair, &err));
    link_t veth_pb = pb_pair.f0, bread_pb = pb_pair.f1;
    link_t veth_jelly = jelly_pair.f0, bread_j = jelly_pair.f1;

    step(3, "move veth-pb into pb and veth-jelly into jelly");
    TRY(nsw_lab_topology_move_link(lk(veth_pb), ns(pb), &err));
    TRY(nsw_lab_topology_move_link(lk(veth_jelly), ns(jelly), &err));

    step(4, "addresses 10.0.0.10/16 (pb) and 10.0.0.11/16 (jelly), links up");
    s1 = str("10.0.0.10/16");
    TRY(nsw_lab_address_add(lk(veth_pb), &s1, &err));
    s1 = str("10.0.0.11/16");
    TRY(nsw_lab_address_add(lk(veth_jelly), &s1, &err));
    TRY(nsw_lab_topology_set_up(lk(veth_pb), &err));
    TRY(nsw_lab_topology_set_up(lk(veth_jelly), &err));

    step(5, "bridge brd1, up");
    s1 = str("brd1");
    TRY(nsw_lab_topology_create_bridge(&s1, ns(host), &brd1, &err));
    TRY(nsw_lab_topology_set_up(lk(brd1), &err));

    step(6, "bread-pb-veth and bread-j-veth into brd1, up");
    TRY(nsw_lab_topology_set_master(lk(bread_pb), lk(brd1), &err));
    TRY(nsw_lab_topology_set_master(lk(bread_j), lk(brd1), &err));
    TRY(nsw_lab_topology_set_up(lk(bread_pb), &err));
    TRY(nsw_lab_topology_set_up(lk(bread_j), &err));

    step(7, "ping pb from jelly");
    if (!reach(jelly, "10.0.0.10", "jelly -> pb")) return false;

    step(8, "10.0.0.1/16 on brd1: the host reaches the namespaces");
    s1 = str("10.0.0.1/16");
    TRY(nsw_lab_address_add(lk(brd1), &s1, &err));
    if (!reach(host, "10.0.0.10", "host -> pb")) return false;

    step(9, "default routes via 10.0.0.1 in pb and jelly");
    s1 = str("default"), s2 = str("10.0.0.1");
    TRY(nsw_lab_route_add(ns(pb), &s1, &s2, &err));
    TRY(nsw_lab_route_add(ns(jelly), &s1, &s2, &err));

    step(10, "masquerade 10.0.0.0/16 on the host");
    s1 = str("10.0.0.0/16");
    TRY(nsw_lab_nat_masquerade(ns(host), &s1, &err));

    step(11, "IPv4 forwarding on the host");
    TRY(nsw_lab_route_enable_forwarding(ns(host), NSW_LAB_TYPES_IP_FAMILY_IPV4, &err));

    if (outside != NULL) {
        char what[128];
        snprintf(what, sizeof what, "ping the outside world (%s) from jelly", outside);
        step(12, what);
        if (!reach(jelly, outside, "jelly -> outside")) return false;
    } else {
        step(12, "no outside address given (nsw run pbj.wasm -- ADDRESS): skipped");
    }
    printf("pb and jelly are up\n");
    // Handles are dropped here; the lab keeps the objects.
    link_t links[] = {veth_pb, bread_pb, veth_jelly, bread_j, brd1};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) nsw_lab_types_link_drop_own(links[i]);
    nsw_lab_types_netns_drop_own(pb);
    nsw_lab_types_netns_drop_own(jelly);
    nsw_lab_types_netns_drop_own(host);
    return true;
}

bool exports_lab_run(lab_list_string_t *args, lab_string_t *err) {
    // Line-buffered: a reactor never exits, so nothing else would flush.
    setvbuf(stdout, NULL, _IOLBF, 0);
    char outside[64] = {0};
    if (args->len > 0) {
        snprintf(outside, sizeof outside, "%.*s", (int)args->ptr[0].len, (const char *)args->ptr[0].ptr);
    }
    lab_list_string_free(args);
    if (build(outside[0] ? outside : NULL)) return true;
    lab_string_dup(err, failure);
    return false;
}
