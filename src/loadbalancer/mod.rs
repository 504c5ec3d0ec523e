//! Load balancers salve shifts traffic on: HAProxy through its runtime API (for now),
//! each server drained, weighed and readied by the actions of `action::load_balancer`.

pub mod haproxy;
