//! The saved form of a simulation (what `annex sim` keeps between
//! commands) does not change: a simulation saved by an earlier build loads,
//! saves back byte for byte, and goes on as one never saved.

use annex_sim::{run, NoHost, Sim};

/// A sim file touching every part of the saved state: repositories and a
/// special remote, a cluster node, connections, trust, groups, preferred,
/// required and group-wanted content, maxsize, numcopies, mincopies,
/// rebalance, metadata, locations and sizes after steps, and a failure.
const SIM_FILE: &str = include_str!("data/saved.sim");

/// What the build of 4c3b533 saved after running [`SIM_FILE`].
const SAVED: &[u8] = include_bytes!("data/saved.json");

fn ran() -> Sim {
    let mut s = Sim::new(1);
    run(&mut s, SIM_FILE, &mut NoHost::default()).expect("the sim file runs");
    s
}

#[test]
fn a_simulation_saves_as_it_always_has() {
    assert!(
        ran().save().unwrap() == SAVED,
        "the saved form changed:\n{}",
        String::from_utf8_lossy(&ran().save().unwrap())
    );
}

#[test]
fn a_saved_simulation_loads_and_saves_back_byte_for_byte() {
    let loaded = Sim::load(SAVED).unwrap();
    assert!(loaded.save().unwrap() == SAVED);
    assert_eq!(loaded.failures.len(), 1);
}

#[test]
fn a_loaded_simulation_goes_on_as_one_never_saved() {
    let more = "add late.x 300kb foo\nwanted foo nothing\naction foo gitpull bar\n\
                step 50\naction bar sync foo\nstepstable 200\n";
    let mut kept = ran();
    run(&mut kept, more, &mut NoHost::default()).unwrap();
    let mut loaded = Sim::load(SAVED).unwrap();
    run(&mut loaded, more, &mut NoHost::default()).unwrap();
    assert!(loaded.save().unwrap() == kept.save().unwrap());
    assert_eq!(loaded.show(), kept.show());
}
