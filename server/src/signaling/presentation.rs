//! Presenting a library file in the room (issue 19): a participant with the
//! `screenshare` permission opens one of the team's library files that has
//! slides (a PDF's pages, an image), and everyone sees the same slide; page
//! turns reach everyone; a late joiner gets the current slide in its
//! `collab_state`; the presentation ends with `present_stop`, when the
//! presenter leaves, or with the session. A running recording keeps each
//! slide shown, and its composite shows it as the screen share.
//!
//! The slide itself is a signed, expiring link to the PNG (the library's
//! `/media` link, relative to the server), made by the room for each page:
//! participants never hold an API key. Only files of libraries that belong
//! to this room or to no room can be presented.

use convene_api::libraries::media_link;
use convene_api::live_events::{LiveEvent, PresentableFile, Presentation};

use super::room::RoomActor;

/// A refusal: (code, message).
type Refusal = (&'static str, String);

/// How long a slide's link is good for (a long meeting on one slide).
const SLIDE_LINK_MINUTES: i64 = 12 * 60;
/// Files listed to a presenter, at most.
const MAX_LISTED: i64 = 200;

impl RoomActor {
    fn may_present(&self, from: &str) -> Result<(), Refusal> {
        match self.members.get(from) {
            Some(m) if m.may("screenshare") => Ok(()),
            Some(_) => Err((
                "FORBIDDEN",
                "your role may not present files (needs the `screenshare` permission)".into(),
            )),
            None => Err(("FORBIDDEN", "you are not in this room".into())),
        }
    }

    fn internal(e: impl std::fmt::Display) -> Refusal {
        tracing::error!(error = %e, "presentation");
        ("INTERNAL", "the server could not do that".into())
    }

    /// `library_files`: what the sender may open.
    pub(super) async fn list_presentable(&mut self, from: &str) -> Result<(), Refusal> {
        self.may_present(from)?;
        let files = self
            .sig
            .db
            .presentable_files(&self.team_id, &self.room_id, MAX_LISTED)
            .await
            .map_err(Self::internal)?
            .into_iter()
            .map(|f| PresentableFile {
                library_id: f.library_id,
                file_id: f.id,
                name: f.name,
                pages: f.pages,
            })
            .collect();
        self.tell(from, LiveEvent::LibraryFiles { files });
        Ok(())
    }

    /// `present_start`: opens `file_id` at `page` (default 1) for everyone.
    pub(super) async fn present_start(
        &mut self,
        from: &str,
        file_id: &str,
        page: Option<i64>,
    ) -> Result<(), Refusal> {
        self.may_present(from)?;
        let file = self
            .sig
            .db
            .presentable_file(&self.team_id, &self.room_id, file_id)
            .await
            .map_err(Self::internal)?
            .ok_or((
                "NOT_FOUND",
                "no such library file for this room".to_string(),
            ))?;
        if file.status != convene_api::store::libraries::READY || file.pages < 1 {
            return Err((
                "CONFLICT",
                format!("the file has no slides yet (status {})", file.status),
            ));
        }
        let page = page.unwrap_or(1);
        let slide = self
            .slide(
                Presentation {
                    library_id: file.library_id,
                    file_id: file.id,
                    name: file.name,
                    pages: file.pages,
                    page: 1,
                    url: String::new(),
                    presenter_id: from.to_string(),
                },
                page,
            )
            .await?;
        self.presentation = Some(slide.clone());
        self.record_slide().await;
        self.tell_all(LiveEvent::Presentation {
            presentation: Some(slide),
            by: Some(from.to_string()),
        });
        Ok(())
    }

    /// `present_page`: turns the current presentation to `page`.
    pub(super) async fn present_page(&mut self, from: &str, page: i64) -> Result<(), Refusal> {
        self.may_present(from)?;
        let current = self
            .presentation
            .clone()
            .ok_or(("CONFLICT", "nothing is being presented".to_string()))?;
        let slide = self.slide(current, page).await?;
        self.presentation = Some(slide.clone());
        self.record_slide().await;
        self.tell_all(LiveEvent::Presentation {
            presentation: Some(slide),
            by: Some(from.to_string()),
        });
        Ok(())
    }

    /// `present_stop`, or the presenter left (`by` None).
    pub(super) async fn present_stop(&mut self, by: Option<&str>) -> Result<(), Refusal> {
        if let Some(from) = by {
            self.may_present(from)?;
        }
        if self.presentation.take().is_some() {
            self.record_slide().await;
            self.tell_all(LiveEvent::Presentation {
                presentation: None,
                by: by.map(str::to_string),
            });
        }
        Ok(())
    }

    /// A member left: their presentation ends with them.
    pub(super) async fn presenter_left(&mut self, pid: &str) {
        if self
            .presentation
            .as_ref()
            .is_some_and(|p| p.presenter_id == pid)
        {
            let _ = self.present_stop(None).await;
        }
    }

    /// Tells the running recording which slide is shown from now on (or
    /// none): the composite shows it as the screen share
    /// (`recording::slides`). Awaited, so the changes keep their order.
    pub(super) async fn record_slide(&self) {
        let Some((dir, at_ms)) = self.recording_clock() else {
            return;
        };
        let cfg = &self.sig.recordings.config;
        let png = self.presentation.as_ref().map(|p| {
            cfg.library_files
                .join(&p.file_id)
                .join("slides")
                .join(format!("{}.png", p.page))
        });
        crate::recording::slides::note(dir, at_ms, png).await;
    }

    /// `p` at `page` (1..=pages) with a fresh signed link to that slide.
    async fn slide(&self, mut p: Presentation, page: i64) -> Result<Presentation, Refusal> {
        if page < 1 || page > p.pages {
            return Err((
                "BAD_REQUEST",
                format!("page must be between 1 and {}", p.pages),
            ));
        }
        let team = self
            .sig
            .db
            .team_by_id(&self.team_id)
            .await
            .map_err(Self::internal)?
            .ok_or_else(|| Self::internal("the room's team is gone"))?;
        let expires =
            (chrono::Utc::now() + chrono::Duration::minutes(SLIDE_LINK_MINUTES)).timestamp();
        p.url = media_link(
            "",
            &team.developer_key,
            &p.library_id,
            &p.file_id,
            Some(page),
            expires,
        );
        p.page = page;
        Ok(p)
    }
}
