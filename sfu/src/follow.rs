//! Which publishers a viewer that cannot renegotiate is shown: a WHEP
//! player offers a fixed set of m-lines (say one audio, one video) once,
//! and the server fills them with the active speakers, or with one chosen
//! participant.

/// Decides, for one media kind, which participant each of a viewer's
/// `current.len()` outgoing slots shows.
///
/// - `pin`: the viewer asked for this participant; only it is shown (in
///   the first slot), and nothing while it does not publish this kind.
/// - otherwise the speakers (loudest first) come first, then whoever the
///   slots already show, then the other publishers in `publishing` order.
///   Only participants in `publishing` (those with a track of this kind)
///   are shown.
///
/// A slot keeps its participant while that one is still wanted, so a new
/// speaker replaces whoever left the wanted set rather than reshuffling
/// every slot; with nobody speaking, the slots stay as they are.
pub fn follow<P: Clone + PartialEq>(
    pin: Option<&P>,
    speakers: &[P],
    publishing: &[P],
    current: &[Option<P>],
) -> Vec<Option<P>> {
    let n = current.len();
    // Indices into `publishing`, in order of preference, at most `n`.
    let mut wanted: Vec<usize> = Vec::with_capacity(n);
    let mut want = |p: &P| {
        if wanted.len() < n
            && let Some(i) = publishing.iter().position(|q| q == p)
            && !wanted.contains(&i)
        {
            wanted.push(i);
        }
    };
    match pin {
        Some(p) => want(p),
        None => {
            speakers.iter().for_each(&mut want);
            current.iter().flatten().for_each(&mut want);
            publishing.iter().for_each(&mut want);
        }
    }
    let is_wanted = |p: &P| wanted.iter().any(|&i| publishing[i] == *p);
    let mut out: Vec<Option<P>> = current
        .iter()
        .map(|c| c.as_ref().filter(|c| is_wanted(c)).cloned())
        .collect();
    for &i in &wanted {
        let p = &publishing[i];
        if out.iter().flatten().any(|o| o == p) {
            continue;
        }
        if let Some(slot) = out.iter_mut().find(|o| o.is_none()) {
            *slot = Some(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_shows_the_loudest_speaker_that_publishes() {
        let publishing = ["a", "b", "c"];
        // Nobody speaks yet: the first publisher.
        assert_eq!(follow(None, &[], &publishing, &[None]), [Some("a")]);
        // b speaks: b.
        assert_eq!(follow(None, &["b"], &publishing, &[Some("a")]), [Some("b")]);
        // Silence again: b stays (no flapping back to the first publisher).
        assert_eq!(follow(None, &[], &publishing, &[Some("b")]), [Some("b")]);
        // A speaker without a track of this kind is skipped.
        assert_eq!(
            follow(None, &["x", "c"], &publishing, &[Some("b")]),
            [Some("c")]
        );
        // The one shown stops publishing: the next one.
        assert_eq!(follow(None, &[], &["a", "c"], &[Some("b")]), [Some("a")]);
        // Nobody publishes: nothing.
        assert_eq!(follow::<&str>(None, &[], &[], &[Some("b")]), [None]);
    }

    #[test]
    fn slots_keep_their_participant_while_wanted() {
        let publishing = ["a", "b", "c"];
        let now = follow(None, &[], &publishing, &[None, None]);
        assert_eq!(now, [Some("a"), Some("b")]);
        // c speaks: it replaces b (a stays in its slot; b was ranked after
        // a among those already shown).
        let now = follow(None, &["c"], &publishing, &now);
        assert_eq!(now, [Some("a"), Some("c")]);
        // a and c speak, c louder: nobody moves.
        let now = follow(None, &["c", "a"], &publishing, &now);
        assert_eq!(now, [Some("a"), Some("c")]);
        // Never the same participant twice.
        let now = follow(None, &["a", "a"], &["a"], &[None, None]);
        assert_eq!(now, [Some("a"), None]);
    }

    #[test]
    fn a_pin_shows_only_that_participant() {
        let publishing = ["a", "b"];
        assert_eq!(
            follow(Some(&"b"), &["a"], &publishing, &[None]),
            [Some("b")]
        );
        assert_eq!(
            follow(Some(&"b"), &["a"], &publishing, &[Some("a"), None]),
            [Some("b"), None]
        );
        // Not publishing (yet): nothing, not someone else.
        assert_eq!(
            follow(Some(&"z"), &["a"], &publishing, &[Some("a")]),
            [None]
        );
    }
}
