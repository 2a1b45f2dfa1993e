//! The bounded stable runs of the broker's fuzz targets (`FLOE_FUZZ_CASES` scales them;
//! see `docs/fuzzing.md`).

use floe_protocol::fuzz::{Rng, cases, mutate, run, seed};
use floe_protocol::request::parse_request;

use super::*;
use crate::handlers::SUPPORTED_APIS;

#[test]
fn request_corpus_covers_every_served_api_version_and_decodes() {
    let corpus = request_corpus(uuid::Uuid::from_u128(1));
    for api in SUPPORTED_APIS {
        for version in api.min..=api.max {
            let frames: Vec<_> = corpus
                .iter()
                .filter(|f| {
                    f[..4] == [(api.key as i16).to_be_bytes(), version.to_be_bytes()].concat()
                })
                .collect();
            assert!(!frames.is_empty(), "no seed for {:?} v{version}", api.key);
            for frame in frames {
                let parsed = parse_request(bytes::Bytes::from(frame.clone())).unwrap();
                parsed.decode_body().unwrap();
            }
        }
    }
}

/// Mutated frames of every served (API, version) through header parsing and body decoding.
#[test]
fn fuzz_request_decode() {
    let corpus = request_corpus(uuid::Uuid::from_u128(1));
    run(
        "request_decode",
        cases(200_000),
        &corpus,
        mutate_request,
        request_decode,
    );
}

/// Mutated frames of every served (API, version) through the real handlers of a broker on
/// a temporary data directory, and the responses encoded.
#[test]
fn fuzz_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = rt.block_on(async { FuzzBroker::open(dir.path()) }).unwrap();
    let corpus = request_corpus(broker.topic_id);
    let answered = std::cell::Cell::new(0usize);
    let cases = cases(20_000);
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::new());
    run("dispatch", cases, &corpus, mutate_request, |data| {
        let outcome = rt.block_on(broker.dispatch(data));
        *tally
            .borrow_mut()
            .entry(format!("{outcome:?}"))
            .or_insert(0) += 1;
        if outcome == Dispatched::Answered {
            answered.set(answered.get() + 1);
        }
    });
    eprintln!("dispatch outcomes: {:?}", tally.borrow());
    // Many mutations must still reach a handler and get an answer, or the run tests little
    // (most of the others fail to decode, which `fuzz_request_decode` covers).
    assert!(
        answered.get() >= cases / 8,
        "only {} of {cases} cases were answered",
        answered.get()
    );
}

/// Random and mutated request sequences against the classic group state machine.
#[test]
fn fuzz_group_sequences() {
    run(
        "group_sequence",
        cases(100_000),
        &group_inputs(),
        mutate,
        group_sequence,
    );
}

/// The inputs of `fuzz_group_sequences`: the seed programs and random ones.
fn group_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed() ^ 0x67);
    let mut corpus = group_corpus();
    corpus.extend((0..8).map(|_| {
        let n = group::STEP_BYTES * (2 + rng.below(40));
        rng.bytes(n)
    }));
    corpus
}

/// The programs must walk the real paths, or mutating them finds little: every seed
/// program reaches a Stable generation, and so do many of the mutated programs the fuzz
/// run tries.
#[test]
fn group_programs_reach_stable_generations() {
    for program in group_corpus() {
        let (stable, generation) = group::run_program(&program);
        assert!(stable > 0 && generation >= 1, "{program:?}");
    }
    let corpus = group_inputs();
    let mut rng = Rng::new(3);
    let reached = (0..1000)
        .filter(|_| {
            let (input, donor) = (rng.pick(&corpus).clone(), rng.pick(&corpus).clone());
            group::run_program(&mutate(&mut rng, &input, &donor)).0 > 0
        })
        .count();
    eprintln!("{reached} of 1000 mutated programs reached Stable");
    assert!(
        reached >= 100,
        "only {reached} of 1000 mutated programs reached Stable"
    );
}

/// With `FLOE_FUZZ_CORPUS_DIR` set, writes the seed corpora of the cargo-fuzz targets
/// (`<dir>/<target>/seed-<n>`) for libFuzzer to start from; see `docs/fuzzing.md`.
#[test]
fn seed_corpora_for_cargo_fuzz() {
    let record_batches: Vec<Vec<u8>> = floe_protocol::fuzz::batch_corpus()
        .into_iter()
        .map(|mut input| {
            // libFuzzer cannot compute CRCs: an odd mode byte makes the body fix them.
            input[0] = 1;
            input
        })
        .collect();
    let corpora = [
        ("request_decode", request_corpus(uuid::Uuid::from_u128(1))),
        ("record_batch", record_batches),
        ("group_sequence", group_corpus()),
    ];
    for (_, corpus) in &corpora {
        assert!(!corpus.is_empty());
    }
    let Some(dir) = std::env::var_os("FLOE_FUZZ_CORPUS_DIR") else {
        return;
    };
    for (target, corpus) in corpora {
        let dir = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, input) in corpus.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), input).unwrap();
        }
    }
}
