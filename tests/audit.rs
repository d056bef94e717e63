//! The verifiable log driven through the `tenure` binary, as an auditor would, on a real store of
//! each backend: every kind of tampering is reported by position, an untouched store passes, and
//! proofs check offline with only the public key, also after erasure.

use std::path::PathBuf;
use std::process::{Command, Output};

use tenure_store::conformance::TestDatabase;

/// A store on one backend and the data directory beside it.
struct Place {
    dir: tempfile::TempDir,
    database: Option<TestDatabase>,
}

impl Place {
    fn new(postgres: bool) -> Place {
        let database = postgres.then(|| tokio::runtime::Runtime::new().unwrap().block_on(TestDatabase::create()));
        Place { dir: tempfile::tempdir().unwrap(), database }
    }

    fn tenure(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
        command.arg("--data-dir").arg(self.dir.path());
        if let Some(database) = &self.database {
            command.args(["--store", &database.url]);
        }
        command.args(args).env_remove("TENURE_STORE").env("USER", "ops-audit").output().expect("run tenure")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let output = self.tenure(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// SQL straight on the store, as someone with access to the file or the server would run it.
    fn sql(&self, sql: &str) -> String {
        match &self.database {
            None => {
                let connection = rusqlite::Connection::open(self.file("tenure.db")).unwrap();
                connection.execute_batch(sql).unwrap();
                String::new()
            }
            Some(database) => {
                let output = Command::new("psql").args([database.url.as_str(), "-qAtc", sql]).output().unwrap();
                assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
                String::from_utf8(output.stdout).unwrap().trim().to_string()
            }
        }
    }

    fn stream_at(&self, position: u64) -> String {
        match &self.database {
            None => rusqlite::Connection::open(self.file("tenure.db"))
                .unwrap()
                .query_row("SELECT stream FROM events WHERE position = ?1", [position as i64], |r| r.get(0))
                .unwrap(),
            Some(_) => self.sql(&format!("SELECT stream FROM events WHERE position = {position}")),
        }
    }

    /// The log every case starts from: four invitations and two changes (positions 1–10),
    /// `early.json` signed at 7 events and `late.json` at 10.
    ///
    /// 1 claim jdoe, 2 jdoe invited, 3 claim asmith, 4 asmith invited, 5 jdoe mfa,
    /// 6 claim bwong, 7 bwong invited, 8 claim cdavis, 9 cdavis invited, 10 asmith mfa.
    fn invite(&self, name: &str) {
        let email = format!("{name}@example.com");
        self.ok(&["admin", "invite", "--username", name, "--email", &email, "--org", "acme"]);
    }

    fn scenario(&self) {
        let invite = |name: &str| self.invite(name);
        invite("jdoe");
        invite("asmith");
        self.ok(&["admin", "mfa", "jdoe", "email"]);
        invite("bwong");
        std::fs::write(self.file("early.json"), self.ok(&["audit", "head"])).unwrap();
        invite("cdavis");
        self.ok(&["admin", "mfa", "asmith", "app"]);
        std::fs::write(self.file("late.json"), self.ok(&["audit", "head"])).unwrap();
    }

    fn verify(&self, head: Option<&str>) -> (bool, String) {
        let head = head.map(|name| self.file(name).display().to_string());
        let mut args = vec!["audit", "verify-store"];
        if let Some(head) = &head {
            args.extend(["--head", head]);
        }
        let output = self.tenure(&args);
        let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(!text.contains("panicked"), "{text}");
        (output.status.success(), text)
    }

    /// Flips one bit of the stored payload of the event at `position`.
    fn flip_a_byte(&self, position: u64) {
        match &self.database {
            None => {
                let c = rusqlite::Connection::open(self.file("tenure.db")).unwrap();
                let mut data: Vec<u8> = c
                    .query_row("SELECT data FROM events WHERE position = ?1", [position as i64], |r| r.get(0))
                    .unwrap();
                data[10] ^= 1;
                c.execute("UPDATE events SET data = ?1 WHERE position = ?2", rusqlite::params![data, position as i64])
                    .unwrap();
            }
            Some(_) => {
                self.sql(&format!(
                    "UPDATE events SET data = set_byte(data, 10, get_byte(data, 10) # 1) WHERE position = {position}"
                ));
            }
        }
    }

    /// Appends a forged event to the stream of the event at `after` with a correct chain link,
    /// at the next position, as a forger who knows the chain's rules would.
    fn forge(&self, after: u64) -> u64 {
        let stream = self.stream_at(after);
        let events = {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                use tenure_store::EventStore;
                let location =
                    tenure_store::Location::parse(self.database.as_ref().map(|d| d.url.as_str()), self.dir.path())
                        .unwrap();
                let store = location.open_events(tenure_store::sqlite::Open::MustExist).await.unwrap();
                (store.read_stream(&stream, 1).await.unwrap(), store.head().await.unwrap())
            })
        };
        let (history, head) = events;
        let last = history.last().unwrap();
        let forged = tenure_store::NewEvent {
            id: uuid::Uuid::now_v7(),
            event_type: "MfaRequirementChanged".into(),
            schema_version: 1,
            data: br#"{"mfa":"none"}"#.to_vec(),
            recorded_at: last.recorded_at,
            actor: "operator:ops-audit".into(),
            correlation_id: uuid::Uuid::now_v7(),
        };
        let version = last.version + 1;
        let hash = tenure_store::chain::hash(&forged, &stream, version, &last.hash);
        let position = head + 1;
        type Literal<T> = fn(T) -> String;
        let (blob, uuid): (Literal<&[u8]>, Literal<uuid::Uuid>) = match self.database {
            None => (|b| format!("x'{}'", hex::encode(b)), |u| format!("x'{}'", hex::encode(u.as_bytes()))),
            Some(_) => (|b| format!("decode('{}', 'hex')", hex::encode(b)), |u| format!("'{u}'::uuid")),
        };
        let mut sql = format!(
            "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, recorded_at, actor, \
             correlation_id, data, prev_hash, hash) VALUES ({position}, '{stream}', {version}, {}, '{}', 1, {}, '{}', {}, {}, {}, {});",
            uuid(forged.id),
            forged.event_type,
            forged.recorded_at.timestamp_micros(),
            forged.actor,
            uuid(forged.correlation_id),
            blob(&forged.data),
            blob(&last.hash),
            blob(&hash),
        );
        if self.database.is_some() {
            sql.push_str(&format!("UPDATE head SET position = {position};"));
        }
        self.sql(&sql);
        position
    }
}

fn both(case: impl Fn(&Place)) {
    for postgres in [false, true] {
        let place = Place::new(postgres);
        place.scenario();
        case(&place);
    }
}

#[track_caller]
fn assert_reported(place: &Place, head: Option<&str>, needles: &[&str]) {
    let (ok, text) = place.verify(head);
    assert!(!ok, "tampering passed: {text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(text.contains("store NOT verified"), "{text}");
}

#[test]
fn an_untouched_store_passes_and_so_do_its_saved_heads() {
    both(|place| {
        let (ok, text) = place.verify(None);
        assert!(ok && text.contains("store verified: 10 events"), "{text}");
        for head in ["early.json", "late.json"] {
            let (ok, text) = place.verify(Some(head));
            assert!(ok, "{head}: {text}");
        }
        let (early, late) =
            (place.file("early.json").display().to_string(), place.file("late.json").display().to_string());
        let out = place.ok(&["audit", "consistency", "--from", &early, "--to", &late]);
        assert!(out.contains("\"consistent\": true"), "{out}");
        let refused = place.tenure(&["audit", "consistency", "--from", &late, "--to", &early]);
        assert!(!refused.status.success());
    });
}

#[test]
fn a_changed_byte_is_reported_at_its_position() {
    both(|place| {
        place.flip_a_byte(4);
        // The chain hash covers the payload; the leaf covers the chain hash as stored, so the
        // tree still matches: the chain names the event.
        assert_reported(place, None, &["position 4 (event", "changed after writing"]);
    });
}

#[test]
fn an_event_moved_to_another_stream_is_reported() {
    both(|place| {
        place.sql("UPDATE events SET stream = 'account-00000000-0000-7000-8000-000000000000' WHERE position = 4");
        // The moved event no longer hashes in its new stream, and its old stream lacks it.
        assert_reported(
            place,
            None,
            &["position 4 (event", "changed after writing", "position 10 (event", "out of sequence"],
        );
    });
}

#[test]
fn a_deleted_event_is_reported_as_missing() {
    both(|place| {
        place.sql("DELETE FROM events WHERE position = 3");
        assert_reported(place, None, &["position 3 is missing", "position 4 (event"]);
    });
}

#[test]
fn a_deleted_stream_tail_is_reported() {
    both(|place| {
        // jdoe's last event (5), and the log's last event, asmith's (10).
        place.sql("DELETE FROM events WHERE position IN (5, 10)");
        if place.database.is_some() {
            place.sql("UPDATE head SET position = 9");
        }
        assert_reported(place, None, &["position 5 is missing", "signed head of size 10", "covers positions 10 to 10"]);
    });
}

#[test]
fn a_deleted_stream_is_reported() {
    both(|place| {
        let stream = place.stream_at(4);
        place.sql(&format!("DELETE FROM events WHERE stream = '{stream}'"));
        assert_reported(place, None, &["position 4 is missing", "covers positions 10 to 10", "which does not exist"]);
    });
}

#[test]
fn a_forged_event_with_a_correct_chain_is_reported() {
    both(|place| {
        let position = place.forge(5);
        assert_eq!(position, 11);
        assert_reported(place, None, &["position 11 (event", "not written by Tenure", "the kept tree"]);
    });
}

#[test]
fn two_reordered_events_are_reported() {
    both(|place| {
        place.sql(
            "UPDATE events SET position = -1 WHERE position = 2; UPDATE events SET position = 2 WHERE position = 4; \
             UPDATE events SET position = 4 WHERE position = -1;",
        );
        assert_reported(place, None, &["position 2 (event", "position 4 (event", "moved, reordered"]);
    });
}

#[test]
fn a_store_rolled_back_to_an_older_copy_is_caught_by_a_later_saved_head() {
    for postgres in [false, true] {
        let place = Place::new(postgres);
        let invite = |name: &str| place.invite(name);
        invite("jdoe");
        invite("asmith");
        place.ok(&["audit", "head"]);
        // The older copy: the whole database as it is now.
        let copy = tempfile::tempdir().unwrap();
        let saved_tree = match &place.database {
            None => {
                for file in ["tenure.db", "tenure.db-wal"] {
                    let _ = std::fs::copy(place.file(file), copy.path().join(file));
                }
                String::new()
            }
            Some(_) => place.sql("SELECT encode(tree, 'hex') FROM head"),
        };
        invite("bwong");
        std::fs::write(place.file("later.json"), place.ok(&["audit", "head"])).unwrap();
        match &place.database {
            None => {
                let _ = std::fs::remove_file(place.file("tenure.db-shm"));
                let _ = std::fs::remove_file(place.file("tenure.db-wal"));
                for file in ["tenure.db", "tenure.db-wal"] {
                    let _ = std::fs::copy(copy.path().join(file), place.file(file));
                }
            }
            Some(_) => {
                place.sql(&format!(
                    "DELETE FROM events WHERE position > 4; DELETE FROM tree_heads WHERE tree_size > 4; \
                     UPDATE head SET position = 4, tree = decode('{saved_tree}', 'hex');"
                ));
            }
        }
        // Consistent with itself: only the auditor's later head shows what was lost.
        let (ok, text) = place.verify(None);
        assert!(ok, "{text}");
        assert_reported(&place, Some("later.json"), &["saved head of size 6", "covers positions 5 to 6"]);
    }
}

#[test]
fn proofs_check_offline_with_the_public_key_also_after_erasure() {
    let place = Place::new(false);
    place.scenario();
    std::fs::write(place.file("log.pem"), place.ok(&["audit", "public-key"])).unwrap();
    let prove = |name: &str, file: &str| {
        std::fs::write(place.file(file), place.ok(&["audit", name, "--proof"])).unwrap();
    };
    let check = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["audit", "check-proof"])
            .arg(place.file(file))
            .arg("--public-key")
            .arg(place.file("log.pem"))
            .output()
            .unwrap()
    };
    let id = place.ok(&["audit", "jdoe", "--format", "json"]);
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let stream = id[0]["stream"].as_str().unwrap().to_string();
    let account = stream.trim_start_matches("account-").to_string();
    prove("jdoe", "before.json");
    let checked = check("before.json");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("proof verified: 2 events"));

    // Everyone is deleted far ahead: the keys go, the events stay, and so do their proofs.
    let far = (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    place.ok(&["scheduler", "--once", "--now", &far]);
    prove(&account, "after.json");
    let checked = check("after.json");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let text = String::from_utf8_lossy(&checked.stdout).to_string();
    let before: serde_json::Value = serde_json::from_slice(&std::fs::read(place.file("before.json")).unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(place.file("after.json")).unwrap()).unwrap();
    let events = after["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["type"] == "Deleted"), "{after}");
    assert!(text.contains(&format!("proof verified: {} events", events.len())), "{text}");
    assert_eq!(before["events"][0]["data"], after["events"][0]["data"], "erasure leaves the stored bytes as they were");
    let (ok, text) = place.verify(Some("late.json"));
    assert!(ok, "{text}");

    // A changed proof, or another key, fails, naming the event.
    let mut forged = after.clone();
    forged["events"][1]["actor"] = "operator:someone-else".into();
    std::fs::write(place.file("forged.json"), forged.to_string()).unwrap();
    let refused = check("forged.json");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("do not hash to its chain hash"));
    let other = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(other.path())
        .args(["admin", "invite", "--username", "another", "--email", "another@example.com", "--org", "elsewhere"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let other_key = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(other.path())
        .args(["audit", "public-key"])
        .output()
        .unwrap();
    std::fs::write(place.file("log.pem"), other_key.stdout).unwrap();
    let refused = check("after.json");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not by"));
}

#[test]
fn operators_make_auditors_of_one_org_or_of_every_org() {
    let place = Place::new(false);
    let invite = |name: &str, extra: &[&str]| {
        let email = format!("{name}@example.com");
        let mut args = vec!["admin", "invite", "--username", name, "--email", &email, "--org", "acme"];
        args.extend(extra);
        place.tenure(&args)
    };
    assert!(invite("eve", &["--role", "auditor"]).status.success());
    assert!(invite("olga", &["--role", "auditor", "--all-orgs"]).status.success());
    let refused = invite("mallory", &["--role", "user", "--all-orgs"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all-orgs"), "{refused:?}");
    let invited = |name: &str| -> serde_json::Value {
        let history: serde_json::Value = serde_json::from_str(&place.ok(&["audit", name, "--format", "json"])).unwrap();
        history[0]["data"].clone()
    };
    let (eve, olga) = (invited("eve"), invited("olga"));
    assert_eq!((eve["role"].as_str(), eve.get("all_orgs")), (Some("auditor"), None), "{eve}");
    assert_eq!((olga["role"].as_str(), olga["all_orgs"].as_bool()), (Some("auditor"), Some(true)), "{olga}");
}

/// A change made to the store behind Tenure's back; returns what the SQL printed.
type Tamper = fn(&Place) -> String;

/// The issue's first complaint: an account's own `--verify` passed what its chain cannot see.
#[test]
fn an_accounts_verify_sees_a_moved_tail_a_deleted_tail_and_a_deleted_stream() {
    let cases: [(&str, Tamper); 3] = [
        ("asmith", |p| {
            p.sql("UPDATE events SET stream = 'account-00000000-0000-7000-8000-000000000000' WHERE position = 10")
        }),
        ("jdoe", |p| p.sql("DELETE FROM events WHERE position = 5")),
        ("asmith", |p| p.sql(&format!("DELETE FROM events WHERE stream = '{}'", p.stream_at(4)))),
    ];
    for (name, tamper) in cases {
        both(|place| {
            let intact = place.tenure(&["audit", name, "--verify"]);
            assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stdout));
            tamper(place);
            let output = place.tenure(&["audit", name, "--verify"]);
            let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{name}: tampering passed: {text}");
            assert!(text.contains("log NOT verified") && text.contains("error: position"), "{text}");
        });
    }
}
