//! runbooks/flink/dr-drill.yaml: two drills on one job, two reports.

use crate::flink::{Cluster, cluster, same_path};
use crate::runbook::{Runbook, inputs};
use serde_json::Value;

#[test]
fn the_drill_run_twice_gives_two_reports_with_the_measured_recovery_time() {
    let (cluster, _serial) = cluster();
    let first_job = cluster.start_job("drill-a", &[], None);
    let runbook = Runbook::new(cluster);
    let drill = |run_id: &str| -> Value {
        let mut args: Vec<String> = ["run", "runbooks/flink/dr-drill.yaml", "--run-id", run_id]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(inputs(&[
            ("flink_url", cluster.url.clone()),
            ("job", "drill-a".into()),
            ("jar_id", cluster.jar_id.clone()),
            ("args", r#"["--name", "drill-a"]"#.into()),
        ]));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        runbook.run(&args).outputs()
    };
    let first = drill("drill-1");
    let second = drill("drill-2");

    // The second drill works on the job the first one restored.
    assert_eq!(first["old_job_id"], first_job.as_str());
    assert_eq!(second["old_job_id"], first["new_job_id"]);
    for (run_id, drill) in [("drill-1", &first), ("drill-2", &second)] {
        let old = drill["old_job_id"].as_str().unwrap();
        assert_eq!(
            cluster.state(old),
            "CANCELED",
            "the disaster: a cancel, no savepoint"
        );
        assert!(
            cluster.savepoints_of(old).is_empty(),
            "no savepoint of {old}"
        );
        let restored = drill["restored_from"].as_str().expect("a restored path");
        assert!(
            Cluster::local(restored).starts_with(Cluster::local(&cluster.checkpoints).join(old)),
            "restored from a checkpoint of {old}: {drill:#}"
        );
        let restored_id = drill["restored_checkpoint_id"].as_u64().unwrap();
        assert!(
            restored_id >= drill["checkpoint_before"]["id"].as_u64().unwrap(),
            "{drill:#}"
        );
        assert!(drill["first_checkpoint_id"].as_u64().unwrap() > restored_id);
        let recovery = drill["recovery_ms"].as_i64().expect("recovery_ms");
        let running = drill["time_to_running_ms"]
            .as_i64()
            .expect("time_to_running_ms");
        assert!(
            0 < running && running < recovery && recovery < 120_000,
            "{drill:#}"
        );
        eprintln!("{run_id}: recovery {recovery} ms (RUNNING after {running} ms)");

        let report = runbook.markdown(run_id);
        assert!(
            report.starts_with(&format!("# Run `{run_id}` of `flink-dr-drill`")),
            "{report}"
        );
        assert!(report.contains("| Status | **succeeded** |"), "{report}");
        assert!(
            report.contains(&format!("\"recovery_ms\": {recovery}")),
            "{report}"
        );
        assert!(report.contains("`disaster/request_cancel`"), "{report}");
        let new = drill["new_job_id"].as_str().unwrap();
        let path = cluster.checkpoints(new)["latest"]["restored"]["external_path"].clone();
        assert!(same_path(path.as_str().unwrap(), restored));
    }
    assert_eq!(
        cluster.state(second["new_job_id"].as_str().unwrap()),
        "RUNNING"
    );
    cluster.assert_state_continues(second["new_job_id"].as_str().unwrap());

    let listed = runbook.run(&["runs", "list"]);
    let drills = listed
        .stdout
        .lines()
        .filter(|l| l.contains("flink-dr-drill"))
        .count();
    assert_eq!(drills, 2, "{}", listed.stdout);
}
