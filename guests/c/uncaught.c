// A newcomer's first lab: nsw's error is not looked at, only asserted
// away (the address is bad).
#include <assert.h>
#include "lab.h"

bool exports_lab_run(lab_list_string_t *args, lab_string_t *out) {
    (void)out;
    lab_list_string_free(args);
    nsw_lab_types_error_t err;
    nsw_lab_types_own_netns_t host = nsw_lab_topology_host(), inside;
    nsw_lab_topology_tuple2_own_link_own_link_t pair;
    lab_string_t s1, s2;
    lab_string_set(&s1, "inside");
    assert(nsw_lab_topology_create_netns(&s1, &inside, &err));
    lab_string_set(&s1, "eth0");
    lab_string_set(&s2, "in0");
    assert(nsw_lab_topology_create_veth(&s1, nsw_lab_types_borrow_netns(inside), &s2, nsw_lab_types_borrow_netns(host), &pair, &err));
    lab_string_set(&s1, "10.1.0.300/24");
    assert(nsw_lab_address_add(nsw_lab_types_borrow_link(pair.f0), &s1, &err));
    return true;
}
