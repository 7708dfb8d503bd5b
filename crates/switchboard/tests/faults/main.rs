//! Fault tests over separate OS processes of the real binary: one auth, two
//! signal replicas sharing a Redis started here, two edges. Steady streams
//! of numbered messages cross each fault; a checker counts what the
//! receivers got (lost, duplicated, reordered, from the wrong sender) and
//! what the senders were told was refused.

mod cluster;
mod peers;

mod edge;
mod kubernetes;
mod mtls;
mod redis;
mod replica;
mod traces;
