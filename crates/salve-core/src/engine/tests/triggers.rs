//! Triggers: debounce, probes, log windows, unit-file state, and evidence an attempt uses up.

use super::*;

#[test]
fn unit_failure_acts_immediately_without_debounce() {
    let mut e = one(DOWN, GUARD, "");
    let v = feed(&mut e, 0.0, unit("php.service", Failed));
    assert!(
        matches!(v.as_slice(), [Verdict::Act { attempt: 1, .. }]),
        "{v:?}"
    );
}

#[test]
fn debounce_waits_for_the_condition_to_hold_for_its_whole_duration() {
    let mut e = one(&format!("{DOWN}\n      for: 5s"), GUARD, "");
    assert!(feed(&mut e, 0.0, unit("php.service", Failed)).is_empty());
    assert_eq!(e.next_deadline(), Some(at(5.0)));
    assert!(feed(&mut e, 4.9, Event::Tick {}).is_empty());
    assert_eq!(acts(&feed(&mut e, 5.0, Event::Tick {})), 1);
}

#[test]
fn a_flap_resets_the_debounce() {
    let mut e = one(&format!("{DOWN}\n      for: 5s"), GUARD, "");
    feed(&mut e, 0.0, unit("php.service", Failed));
    feed(&mut e, 3.0, unit("php.service", Active));
    feed(&mut e, 4.0, unit("php.service", Failed));
    assert!(
        feed(&mut e, 6.0, Event::Tick {}).is_empty(),
        "held only 2s since the flap"
    );
    assert_eq!(acts(&feed(&mut e, 9.0, Event::Tick {})), 1);
}

#[test]
fn http_success_resets_the_consecutive_failure_count() {
    let trig =
        "    - http: { url: \"http://127.0.0.1/ping\", failures: 2, interval: 1s, timeout: 1s }";
    let mut e = one(trig, GUARD, "");
    let probe = |status: u16| {
        Event::Http(HttpObservation {
            url: "http://127.0.0.1/ping".into(),
            status: Some(status),
            error: None,
        })
    };
    assert!(feed(&mut e, 0.0, probe(502)).is_empty());
    assert!(feed(&mut e, 1.0, probe(200)).is_empty());
    assert!(feed(&mut e, 2.0, probe(503)).is_empty());
    assert_eq!(acts(&feed(&mut e, 3.0, probe(504))), 1);
}

#[test]
fn log_matches_count_only_within_their_window() {
    let trig = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 2, within: 10s }";
    let mut e = one(trig, GUARD, "");
    let line = |text: &str| {
        Event::Log(LogLine {
            path: "/var/log/x.log".into(),
            line: text.into(),
        })
    };
    assert!(feed(
        &mut e,
        0.0,
        line("connect() failed (111: Connection refused)")
    )
    .is_empty());
    assert!(feed(&mut e, 5.0, line("favicon.ico not found")).is_empty());
    assert!(
        feed(&mut e, 11.0, line("again refused")).is_empty(),
        "the first hit expired"
    );
    assert_eq!(acts(&feed(&mut e, 12.0, line("refused")),), 1);
}

#[test]
fn a_sub_state_condition_follows_the_latest_sub_state_and_evidence_names_why() {
    let trig = "    - unit: { subState: [failed] }";
    let mut e = one(trig, GUARD, "");
    let sub = |state: &str, result: Option<&str>, restarts: Option<u32>| {
        Event::Unit(UnitObservation {
            name: "php.service".into(),
            active_state: None,
            sub_state: Some(state.into()),
            unit_file_state: None,
            result: result.map(Into::into),
            n_restarts: restarts,
        })
    };
    assert!(feed(&mut e, 0.0, sub("running", Some("success"), Some(0))).is_empty());
    let v = feed(&mut e, 1.0, sub("failed", Some("signal"), Some(3)));
    assert!(
        matches!(&v[..], [Verdict::Act { evidence, .. }]
            if evidence[0].contains("subState=failed") && evidence[0].contains("result=signal") && evidence[0].contains("nRestarts=3")),
        "{v:?}"
    );
}

#[test]
fn unit_file_state_triggers_the_enable_policy() {
    let trig = "    - unit: { unitFileState: [disabled] }";
    let mut e = one(trig, GUARD, "");
    let obs = Event::Unit(UnitObservation {
        name: "php.service".into(),
        active_state: Some(Active),
        sub_state: Some("running".into()),
        unit_file_state: Some(crate::policy::UnitFileState::Disabled),
        result: None,
        n_restarts: None,
    });
    let v = feed(&mut e, 0.0, obs);
    assert!(
        matches!(&v[..], [Verdict::Act { evidence, .. }] if evidence[0].contains("unitFileState=disabled")),
        "{v:?}"
    );
}

#[test]
fn evidence_seen_while_an_attempt_runs_does_not_trigger_another() {
    let log = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 1, within: 30s }";
    let mut e = one(&format!("{DOWN}\n{log}"), GUARD, "");
    assert_eq!(acts(&feed(&mut e, 0.0, unit("php.service", Failed))), 1);
    // Written by nginx while the restart runs: about the outage being fixed.
    feed(
        &mut e,
        0.1,
        Event::Log(LogLine {
            path: "/var/log/x.log".into(),
            line: "connect() refused".into(),
        }),
    );
    feed(&mut e, 0.2, unit("php.service", Active));
    let verified = Event::Outcome(Outcome {
        policy: "p".into(),
        attempt_id: None,
        result: OutcomeResult::Ok,
        verified: Some(true),
        detail: None,
    });
    let mut later = feed(&mut e, 0.3, verified);
    for t in 1..60 {
        later.extend(feed(&mut e, t as f64, Event::Tick {}));
    }
    assert_eq!(acts(&later), 0, "{later:?}");
}

#[test]
fn a_builtin_log_pattern_fires_on_the_nginx_line_it_names() {
    let trig =
        "    - log: { path: /var/log/nginx/error.log, match: nginx.upstream_connect_failed }";
    let mut e = one(trig, GUARD, "");
    let line = |text: &str| {
        Event::Log(LogLine {
            path: "/var/log/nginx/error.log".into(),
            line: text.into(),
        })
    };
    let noise = "2026/11/24 22:00:31 [error] 812#812: *43 open() \"/var/www/html/favicon.ico\" failed (2: No such file or directory)";
    assert!(feed(&mut e, 0.0, line(noise)).is_empty());
    let crit = "2026/11/24 22:00:30 [crit] 812#812: *41 connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /ping.php HTTP/1.1\"";
    let v = feed(&mut e, 1.0, line(crit));
    assert!(
        matches!(&v[..], [Verdict::Act { evidence, .. }] if evidence[0].contains("(nginx.upstream_connect_failed)")),
        "{v:?}"
    );
}

#[test]
fn a_flood_of_log_lines_that_moves_every_deadline_keeps_the_timer_heap_bounded() {
    // Three policies on one log, each with an attempt in flight: every line moves each
    // one's next instant (its oldest hit's expiry), leaving a stale heap entry behind.
    // A fourth waits for a `for` to end in half an hour: its live instant stays on top
    // of the heap, so the stale ones pile up beneath it rather than being dropped as
    // they surface.
    let trig = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 2, within: 1h }";
    let mut yaml: Vec<String> = (0..3)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), trig, GUARD, ""))
        .collect();
    let held = "    - unit: { activeState: [failed] }\n      for: 30m";
    yaml.push(policy_yaml("w", "w.service", held, GUARD, ""));
    let mut e = engine_from(&yaml, Limits::default());
    feed(&mut e, 0.0, unit("w.service", Failed));
    let line = Event::Log(LogLine {
        path: "/var/log/x.log".into(),
        line: "connect() failed (111: Connection refused)".into(),
    });
    feed(&mut e, 0.0, line.clone());
    assert_eq!(acts(&feed(&mut e, 0.001, line.clone())), 3);
    let mut peak = 0;
    for i in 0..20_000 {
        feed(&mut e, 1.0 + f64::from(i) * 0.001, line.clone());
        peak = peak.max(e.timers.len());
    }
    // Rebuilt from the live instants as soon as entries pass 4 per policy plus 1,024,
    // and not before: the rebuild's cost is spread over that many pushes.
    assert_eq!(peak, 4 * 4 + 1024);
    assert_eq!(e.next_deadline(), Some(at(1800.0)));
}

#[test]
fn the_next_deadline_is_a_live_instant_after_deadlines_moved_later() {
    // Each line moves the policies' next instant later, leaving earlier, stale entries
    // on top of the heap: the agent must not be woken for them.
    let trig = "    - log: { path: /var/log/x.log, pattern: 'refused', count: 2, within: 1h }";
    let yaml: Vec<String> = (0..3)
        .map(|i| policy_yaml(&format!("p{i}"), &format!("u{i}.service"), trig, GUARD, ""))
        .collect();
    let mut e = engine_from(&yaml, Limits::default());
    let line = Event::Log(LogLine {
        path: "/var/log/x.log".into(),
        line: "connect() failed (111: Connection refused)".into(),
    });
    feed(&mut e, 0.0, line.clone());
    assert_eq!(acts(&feed(&mut e, 0.001, line.clone())), 3);
    let time = |i: u32| 1.0 + f64::from(i) * 0.001;
    for i in 0..100 {
        feed(&mut e, time(i), line.clone());
    }
    // The older of the two hits kept leaves its window first.
    assert_eq!(
        e.next_deadline(),
        Some(at(time(98)) + Duration::from_secs(3600))
    );
}

fn alert(
    status: AlertStatus,
    fingerprint: &str,
    starts_at: &str,
    labels: &[(&str, &str)],
) -> Event {
    Event::Alert(AlertObservation {
        group_key: "{}:{alertname=\"PhpFpmDown\"}".into(),
        fingerprint: fingerprint.into(),
        status,
        starts_at: starts_at.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

const ALERT: &str =
    "    - alert: { name: PhpFpmDown, labels: { instance: web-1 } }\n      for: 30s";
const WEB_1: &[(&str, &str)] = &[
    ("alertname", "PhpFpmDown"),
    ("instance", "web-1"),
    ("job", "php"),
];

#[test]
fn an_alert_fires_once_however_often_alertmanager_repeats_it() {
    use AlertStatus::Firing;
    let mut e = one(ALERT, GUARD, "");
    assert!(feed(&mut e, 0.0, alert(Firing, "a1", "t0", WEB_1)).is_empty());
    let fired = feed(&mut e, 30.0, Event::Tick {});
    assert!(
        matches!(&fired[..], [Verdict::Act { evidence, .. }]
            if evidence[0] == "alert PhpFpmDown: 1 firing and not acted on yet, last: {instance=\"web-1\", job=\"php\"}"),
        "{fired:?}"
    );
    feed(&mut e, 31.0, outcome("p", OutcomeResult::Ok));
    // Alertmanager's repeat_interval and group_interval send the same alert again.
    let mut later = Vec::new();
    for t in [40.0, 100.0, 400.0, 4000.0] {
        later.extend(feed(&mut e, t, alert(Firing, "a1", "t0", WEB_1)));
        later.extend(feed(&mut e, t + 60.0, Event::Tick {}));
    }
    assert_eq!(acts(&later), 0, "{later:?}");
    // A second alert of the group is news.
    let mut other = WEB_1.to_vec();
    other[2] = ("job", "php-2");
    feed(&mut e, 5000.0, alert(Firing, "b2", "t1", &other));
    assert_eq!(acts(&feed(&mut e, 5030.0, Event::Tick {})), 1);
}

#[test]
fn a_resolved_alert_cancels_a_trigger_in_its_for_and_fires_anew_when_it_fires_again() {
    use AlertStatus::{Firing, Resolved};
    let mut e = one(ALERT, GUARD, "");
    feed(&mut e, 0.0, alert(Firing, "a1", "t0", WEB_1));
    feed(&mut e, 20.0, alert(Resolved, "a1", "t0", WEB_1));
    let mut quiet = Vec::new();
    for t in 21..120 {
        quiet.extend(feed(&mut e, t as f64, Event::Tick {}));
    }
    assert_eq!(acts(&quiet), 0, "resolved within its for: {quiet:?}");
    // The same alert again, a new start: its own `for` from now.
    feed(&mut e, 200.0, alert(Firing, "a1", "t2", WEB_1));
    assert_eq!(acts(&feed(&mut e, 229.0, Event::Tick {})), 0);
    assert_eq!(acts(&feed(&mut e, 230.0, Event::Tick {})), 1);
    feed(&mut e, 231.0, outcome("p", OutcomeResult::Ok));
    // Fired again after a resolution salve never heard of: a new startsAt is news.
    feed(&mut e, 500.0, alert(Firing, "a1", "t3", WEB_1));
    assert_eq!(acts(&feed(&mut e, 530.0, Event::Tick {})), 1);
}

#[test]
fn an_alert_counts_only_with_its_name_and_every_label_the_condition_names() {
    use AlertStatus::Firing;
    let mut e = one(ALERT, GUARD, "");
    let others: [&[(&str, &str)]; 3] = [
        &[("alertname", "PhpFpmDown"), ("instance", "web-2")],
        &[("alertname", "PhpFpmDown")],
        &[("alertname", "NginxDown"), ("instance", "web-1")],
    ];
    let mut heard = Vec::new();
    for (i, labels) in others.iter().enumerate() {
        heard.extend(feed(
            &mut e,
            i as f64,
            alert(Firing, &format!("f{i}"), "t0", labels),
        ));
    }
    heard.extend(feed(&mut e, 100.0, Event::Tick {}));
    assert_eq!(acts(&heard), 0, "{heard:?}");
    assert!(e.next_deadline().is_none(), "nothing holds");
}

#[test]
fn a_flood_of_alerts_keeps_what_a_trigger_remembers_bounded() {
    use AlertStatus::Firing;
    let mut e = one(ALERT, GUARD, "");
    for i in 0..10_000 {
        feed(&mut e, 0.0, alert(Firing, &format!("f{i}"), "t0", WEB_1));
    }
    let fired = feed(&mut e, 30.0, Event::Tick {});
    assert!(
        matches!(&fired[..], [Verdict::Act { evidence, .. }] if evidence[0].contains(": 64 firing")),
        "{fired:?}"
    );
}

fn fpm(queue: u32, idle: u32, reached: u64) -> Event {
    Event::PhpFpm(PhpFpmObservation {
        source: "unix:/run/php/status.sock /status".into(),
        status: Some(PhpFpmStatus {
            pool: "www".into(),
            listen_queue: queue,
            idle,
            active: 5 - idle,
            total: 5,
            max_children_reached: reached,
        }),
        error: None,
    })
}

fn fpm_unanswered() -> Event {
    Event::PhpFpm(PhpFpmObservation {
        source: "unix:/run/php/status.sock /status".into(),
        status: None,
        error: Some("timed out after 1s".into()),
    })
}

const FPM: &str = "    - phpFpm: { status: \"unix:/run/php/status.sock\", interval: 1s, timeout: 1s }\n      for: 2s";

#[test]
fn a_listen_queue_that_stays_above_zero_fires_and_evidence_says_what_the_pool_said() {
    let mut e = one(FPM, GUARD, "");
    feed(&mut e, 0.0, fpm(0, 1, 0));
    feed(&mut e, 1.0, fpm(2, 0, 0));
    // A reading with an empty queue in between: the `for` starts again.
    feed(&mut e, 2.0, fpm(0, 0, 0));
    feed(&mut e, 3.0, fpm(1, 0, 0));
    assert_eq!(acts(&feed(&mut e, 4.0, fpm(3, 0, 0))), 0);
    let fired = feed(&mut e, 5.0, Event::Tick {});
    assert!(
        matches!(&fired[..], [Verdict::Act { evidence, .. }]
            if evidence[0] == "phpFpm status unix:/run/php/status.sock /status: pool www: listen queue 3, 5 active and 0 idle of 5"),
        "{fired:?}"
    );
    feed(&mut e, 5.5, outcome("p", OutcomeResult::Ok));
    // The reading the attempt used is gone: the next ones must hold for 2s again.
    assert_eq!(acts(&feed(&mut e, 16.0, fpm(1, 0, 0))), 0);
    assert_eq!(acts(&feed(&mut e, 17.0, fpm(1, 0, 0))), 0);
    assert_eq!(acts(&feed(&mut e, 18.0, fpm(1, 0, 0))), 1);
}

#[test]
fn a_status_page_that_does_not_answer_is_evidence_too() {
    let mut e = one(FPM, GUARD, "");
    // Two reads without an answer, then one: the count starts again.
    feed(&mut e, 0.0, fpm_unanswered());
    feed(&mut e, 1.0, fpm_unanswered());
    feed(&mut e, 2.0, fpm(0, 1, 0));
    let mut quiet = Vec::new();
    for t in 3..5 {
        quiet.extend(feed(&mut e, t as f64, fpm_unanswered()));
    }
    quiet.extend(feed(&mut e, 6.0, Event::Tick {}));
    assert_eq!(acts(&quiet), 0, "two in a row are not three: {quiet:?}");
    // The third in a row holds, for the trigger's 2 s.
    feed(&mut e, 7.0, fpm_unanswered());
    let fired = feed(&mut e, 9.0, Event::Tick {});
    assert!(
        matches!(&fired[..], [Verdict::Act { evidence, .. }]
            if evidence[0].ends_with(": no answer 3 time(s) in a row, last: timed out after 1s")),
        "{fired:?}"
    );
}

#[test]
fn max_children_reached_counts_only_a_rise_and_every_threshold_given_must_hold() {
    let reached = "    - phpFpm: { status: \"unix:/run/php/status.sock\", maxChildrenReached: true, idleAtMost: 0 }";
    let mut e = one(reached, GUARD, "");
    // The count the pool started with is history.
    assert_eq!(acts(&feed(&mut e, 0.0, fpm(0, 0, 7))), 0);
    assert_eq!(acts(&feed(&mut e, 1.0, fpm(0, 0, 7))), 0);
    // A rise with idle workers left: not both.
    assert_eq!(acts(&feed(&mut e, 2.0, fpm(0, 2, 8))), 0);
    let fired = feed(&mut e, 3.0, fpm(0, 0, 9));
    assert!(
        matches!(&fired[..], [Verdict::Act { evidence, .. }] if evidence[0].ends_with("reached pm.max_children (9 times)")),
        "{fired:?}"
    );
}

#[test]
fn an_alert_still_firing_after_a_failed_attempt_is_tried_again_until_the_circuit_opens() {
    use AlertStatus::Firing;
    let alert_now = "    - alert: { name: PhpFpmDown, labels: { instance: web-1 } }";
    let mut e = one(alert_now, GUARD, "");
    // Alertmanager repeats the alert every second; every restart fails.
    let mut seen = Vec::new();
    for t in 0..300 {
        let decided = feed(&mut e, t as f64, alert(Firing, "a1", "t0", WEB_1));
        let acted = acts(&decided) > 0;
        seen.extend(decided);
        if acted {
            seen.extend(feed(
                &mut e,
                t as f64 + 0.5,
                outcome("p", OutcomeResult::Failed),
            ));
        }
    }
    assert_eq!(
        acts(&seen),
        3,
        "maxAttempts, paced by the cooldown: {seen:?}"
    );
    let escalations = seen
        .iter()
        .filter(|v| matches!(v, Verdict::Escalate { .. }))
        .count();
    assert_eq!(escalations, 1, "then the circuit opens: {seen:?}");
}
