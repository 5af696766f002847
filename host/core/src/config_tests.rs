use super::*;

fn minimal() -> Experiment {
    Experiment {
        experiment: ExperimentSection { name: "t".into(), seed: 1, output_dir: "results".into(), clock: Clock::Real },
        workload: Workload::default(),
        arrival: Arrival::default(),
        nodes: vec![NodeSpec::url("http://127.0.0.1:1")],
        batching: Batching::default(),
        routing: Routing::default(),
        sandbox: Sandbox::default(),
        client: Client::default(),
        slo: Slo::default(),
        results: Results::default(),
    }
}

#[test]
fn validation_names_key_and_value() {
    let mut e = minimal();
    assert_eq!(e.validate(), Ok(()));
    e.arrival.rate = -2.0;
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "arrival.rate = -2: must be a positive number of requests per second"
    );
    let mut e = minimal();
    e.nodes.push(NodeSpec { launch: Some(Launch::Sim), replicas: 0, ..NodeSpec::url("x") });
    assert_eq!(e.validate().unwrap_err().key, "nodes[1].url");
    e.nodes[1].url = None;
    assert_eq!(e.validate().unwrap_err().key, "nodes[1].replicas");
}

#[test]
fn urls_and_limits_are_checked_when_the_file_loads() {
    for (u, ok) in [
        ("http://127.0.0.1:30000", true),
        ("https://api.example.com/v1", true),
        ("http://[::1]:8080", true),
        ("http://localhost", true),
        ("http://127.0.0.1:70000", false),
        ("http://", false),
        ("http://[::1", false),
        ("http://a b:80", false),
        ("http://host:", false),
        ("ftp://x", false),
    ] {
        let mut e = minimal();
        e.nodes = vec![NodeSpec::url(u)];
        assert_eq!(e.validate().is_ok(), ok, "{u}: {:?}", e.validate());
    }
    let mut e = minimal();
    e.nodes = vec![NodeSpec::url("http://127.0.0.1:70000")];
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "nodes[0].url = \"http://127.0.0.1:70000\": has a port that is not a number in 1..=65535"
    );
    let mut e = minimal();
    e.workload.input_len = 4_000_000_000;
    assert_eq!(e.validate().unwrap_err().key, "workload.input_len");
    let mut e = minimal();
    e.workload.num_requests = Some(MAX_REQUESTS + 1);
    assert_eq!(e.validate().unwrap_err().key, "workload.num_requests");
}

#[test]
fn replicas_expand() {
    let mut e = minimal();
    e.nodes = vec![
        NodeSpec {
            launch: Some(Launch::Sim),
            url: None,
            replicas: 3,
            startup_timeout_s: Some(5.0),
            ..NodeSpec::url("x")
        },
        NodeSpec::url("http://a"),
    ];
    assert_eq!(e.node_count(), 4);
}
