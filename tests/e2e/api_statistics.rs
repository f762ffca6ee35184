//! Statistics over fixture sessions written straight into the server's
//! database, checked against hand-computed figures.

use convene_tests::Server;
use convene_tests::rtc_client::{Client, ClientOptions};
use serde_json::{Value, json};

struct Fixture {
    db: convene_tests::fixture_db::FixtureDb,
    team_id: String,
}

impl Fixture {
    async fn open(s: &Server, room_id: &str) -> Fixture {
        let db = s.db().await;
        let team_id = db
            .text("SELECT team_id FROM rooms WHERE id = $1", &[&room_id])
            .await;
        Fixture { db, team_id }
    }

    async fn session(&self, id: &str, room_id: &str, day: &str, from: &str, to: &str) {
        self.db
            .execute(
                "INSERT INTO sessions (id, team_id, room_id, started_at, ended_at, end_reason)
                 VALUES ($1, $2, $3, $4, $5, 'empty')",
                &[
                    &id,
                    &self.team_id,
                    &room_id,
                    &format!("{day}T{from}:00.000000Z"),
                    &format!("{day}T{to}:00.000000Z"),
                ],
            )
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn participant(
        &self,
        id: &str,
        ext: Option<&str>,
        kind: &str,
        session: &str,
        room_id: &str,
        day: &str,
        from: &str,
        to: &str,
    ) {
        self.db.execute(
            "INSERT INTO participants (id, team_id, room_id, session_id, name, external_id, role,
                                       client_kind, joined_at, left_at, leave_reason)
             VALUES ($1, $2, $3, $4, $5, $6, 'speaker', $7, $8, $9, 'left')",
            &[
                &id,
                &self.team_id,
                &room_id,
                &session,
                &id.to_uppercase(),
                &ext,
                &kind,
                &format!("{day}T{from}:00.000000Z"),
                &format!("{day}T{to}:00.000000Z"),
            ],
        )
        .await;
    }
}

fn period(body: &Value, i: usize) -> (String, i64, f64, i64, i64, f64) {
    let p = &body["periods"][i];
    (
        p["period"].as_str().unwrap().to_string(),
        p["sessions"].as_i64().unwrap(),
        p["session_minutes"].as_f64().unwrap(),
        p["participants"].as_i64().unwrap(),
        p["unique_participants"].as_i64().unwrap(),
        p["participation_minutes"].as_f64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_match_hand_computed_values() {
    let s = Server::start();
    let api = s.api();
    let r1 = api
        .post("/api/v1/rooms", json!({"friendly_url": "one"}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r2 = api
        .post("/api/v1/rooms", json!({"friendly_url": "two"}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let f = Fixture::open(&s, &r1).await;
    // S1 (room one, Mon 2 March): 60 min; A (ext x) 30 min, B 10 min.
    f.session("s1", &r1, "2026-03-02", "10:00", "11:00").await;
    f.participant(
        "a1",
        Some("x"),
        "browser",
        "s1",
        &r1,
        "2026-03-02",
        "10:00",
        "10:30",
    )
    .await;
    f.participant(
        "b1",
        None,
        "browser",
        "s1",
        &r1,
        "2026-03-02",
        "10:10",
        "10:20",
    )
    .await;
    // S2 (room one, Tue 3 March): 30 min; A again 30 min, an appliance 15 min.
    f.session("s2", &r1, "2026-03-03", "09:00", "09:30").await;
    f.participant(
        "a2",
        Some("x"),
        "browser",
        "s2",
        &r1,
        "2026-03-03",
        "09:00",
        "09:30",
    )
    .await;
    f.participant(
        "c2",
        None,
        "appliance",
        "s2",
        &r1,
        "2026-03-03",
        "09:00",
        "09:15",
    )
    .await;
    // S3 (room two, Tue 10 March): 20 min; D 20 min.
    f.session("s3", &r2, "2026-03-10", "12:00", "12:20").await;
    f.participant(
        "d3",
        None,
        "browser",
        "s3",
        &r2,
        "2026-03-10",
        "12:00",
        "12:20",
    )
    .await;
    f.db.close().await;

    let march = "date_start=2026-03-01&date_end=2026-03-31";
    let st = api
        .get(&format!("/api/v1/statistics?{march}"))
        .await
        .expect(200)
        .body;
    assert_eq!(st["group_by"], "day");
    assert_eq!(st["sessions"]["sessions"], 3);
    assert_eq!(st["sessions"]["session_minutes"], 110.0);
    assert_eq!(st["sessions"]["average_session_minutes"], 36.67);
    assert_eq!(st["sessions"]["longest_session_minutes"], 60.0);
    assert_eq!(st["sessions"]["rooms_used"], 2);
    assert_eq!(st["participants"]["participants"], 5);
    assert_eq!(st["participants"]["unique_participants"], 4);
    assert_eq!(st["participants"]["participation_minutes"], 105.0);
    assert_eq!(st["participants"]["average_participation_minutes"], 21.0);
    assert_eq!(st["participants"]["browsers"], 4);
    assert_eq!(st["participants"]["appliances"], 1);
    assert_eq!(st["rooms"]["rooms"], 2);
    assert_eq!(
        st["rooms"]["rooms_created"], 0,
        "created today, not in March"
    );
    assert_eq!(st["rooms"]["active_rooms"], 2);
    assert_eq!(st["recordings"], 0);
    assert_eq!(period(&st, 0), ("2026-03-02".into(), 1, 60.0, 2, 2, 40.0));
    assert_eq!(period(&st, 1), ("2026-03-03".into(), 1, 30.0, 2, 2, 45.0));
    assert_eq!(period(&st, 2), ("2026-03-10".into(), 1, 20.0, 1, 1, 20.0));
    assert_eq!(st["periods"].as_array().unwrap().len(), 3);

    let weekly = api
        .get(&format!(
            "/api/v1/statistics/sessions?{march}&group_by=week"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(weekly["group_by"], "week");
    assert_eq!(period(&weekly, 0), ("2026-W09".into(), 2, 90.0, 4, 3, 85.0));
    assert_eq!(period(&weekly, 1), ("2026-W10".into(), 1, 20.0, 1, 1, 20.0));
    let monthly = api
        .get("/api/v1/statistics/participants?grouping=month")
        .await
        .expect(200)
        .body;
    assert_eq!(
        period(&monthly, 0),
        ("2026-03".into(), 3, 110.0, 5, 4, 105.0)
    );
    assert!(monthly.get("rooms").is_none());

    // A narrower range.
    let later = api
        .get("/api/v1/statistics/sessions?date_start=2026-03-03")
        .await
        .expect(200)
        .body;
    assert_eq!(later["sessions"]["sessions"], 2);
    assert_eq!(later["sessions"]["session_minutes"], 50.0);

    // One room; one person (by external id) across sessions.
    let one = api
        .get("/api/v1/rooms/one/statistics")
        .await
        .expect(200)
        .body;
    assert_eq!(one["sessions"]["sessions"], 2);
    assert_eq!(one["sessions"]["session_minutes"], 90.0);
    assert_eq!(one["participants"]["participants"], 4);
    assert_eq!(one["participants"]["unique_participants"], 3);
    let x = api
        .get("/api/v1/participants/x/statistics")
        .await
        .expect(200)
        .body;
    assert_eq!(x["sessions"]["sessions"], 2);
    assert_eq!(x["participants"]["participants"], 2);
    assert_eq!(x["participants"]["participation_minutes"], 60.0);
    let b = api
        .get("/api/v1/participants/b1/statistics")
        .await
        .expect(200)
        .body;
    assert_eq!(b["participants"]["participation_minutes"], 10.0);

    let rec = api
        .get("/api/v1/statistics/recordings")
        .await
        .expect(200)
        .body;
    assert_eq!(rec["recordings"], 0);

    // Validation and scoping.
    api.get("/api/v1/statistics?group_by=year")
        .await
        .expect_invalid("group_by");
    api.get("/api/v1/statistics?date_start=soon")
        .await
        .expect_invalid("date_start");
    api.get("/api/v1/statistics?date_start=2026-03-05&date_end=2026-03-01")
        .await
        .expect_invalid("date_end");
    // Extra query parameters real clients send are ignored.
    api.get("/api/v1/statistics?metrics=participants,sessions")
        .await
        .expect(200);
    api.get("/api/v1/rooms/nope/statistics").await.expect(404);
    api.get("/api/v1/participants/nobody/statistics")
        .await
        .expect(404);
    let (_, other_key) = s.create_team("Other");
    let other = s.api_with_key(&other_key);
    let o = other.get("/api/v1/statistics").await.expect(200).body;
    assert_eq!(o["sessions"]["sessions"], 0);
    assert_eq!(o["rooms"]["rooms"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_statistics_count_who_is_live() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "now"}))
        .await
        .expect(200);
    let cur = api.get("/api/v1/statistics/current").await.expect(200).body;
    assert_eq!(cur["live_rooms"], 0);
    assert_eq!(cur["live_participants"], 0);
    let mut c = Client::connect(ClientOptions {
        room: Some("now".into()),
        name: Some("Nina".into()),
        ..ClientOptions::new(s.ws_url())
    })
    .await;
    c.wait_type("joined").await;
    for path in [
        "/api/v1/statistics/current",
        "/api/v1/statistics/team/current",
        "/api/v1/rooms/now/statistics/current",
    ] {
        let cur = api.get(path).await.expect(200).body;
        assert_eq!(cur["live_rooms"], 1, "{path}: {cur}");
        assert_eq!(cur["live_participants"], 1, "{path}: {cur}");
        assert!(cur["timestamp"].is_string());
    }
    let st = api.get("/api/v1/statistics").await.expect(200).body;
    assert_eq!(st["sessions"]["live_sessions"], 1);
    api.get("/api/v1/rooms/nope/statistics/current")
        .await
        .expect(404);
}
