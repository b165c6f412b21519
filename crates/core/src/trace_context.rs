//! W3C Trace Context (`traceparent`, `tracestate`) read from and written
//! to header pairs, HTTP and Kafka alike. Pure: header pairs in, a context
//! out, and back. A context that is malformed, oversized or not ASCII is
//! ignored, never an error: a trace is advice to the service, not part of
//! the request.

/// The header names, the same over HTTP and Kafka (the bus's `headers`
/// module names them for its messages).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The longest `traceparent` read. Version 00 takes 55 bytes; a later
/// version may append fields, but not without bound.
pub const MAX_TRACEPARENT_BYTES: usize = 256;

/// The longest `tracestate` kept (W3C: a vendor must propagate at least
/// 512 characters and may drop the whole header past that).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// At most this many `tracestate` list members (W3C's limit).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// One hop's trace context: the trace, the span that is the next span's
/// parent, the trace flags, and the vendors' `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A `traceparent` value (and an optional `tracestate`), or `None` if
    /// the `traceparent` is not well-formed. A `tracestate` that is not
    /// well-formed is dropped alone, as the W3C text allows.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        if traceparent.len() > MAX_TRACEPARENT_BYTES {
            return None;
        }
        let mut fields = traceparent.split('-');
        let version = lower_hex::<1>(fields.next()?)?[0];
        let trace_id = lower_hex::<16>(fields.next()?)?;
        let parent_id = lower_hex::<8>(fields.next()?)?;
        let flags = lower_hex::<1>(fields.next()?)?[0];
        // 00 has exactly four fields; a later version may have more, read
        // as 00 (W3C "versioning of traceparent"); ff is never valid.
        let more = fields.next().is_some();
        if version == 0xff || (version == 0 && more) {
            return None;
        }
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            parent_id,
            flags,
            tracestate: tracestate.and_then(valid_tracestate).map(str::to_string),
        })
    }

    /// The `traceparent` value, version 00.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.parent_id),
            self.flags
        )
    }

    /// The trace id as exporters print it (32 lowercase hex digits).
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

/// The trace context of a message or request: its one `traceparent` (two
/// or more are malformed) and its `tracestate` headers, joined as W3C
/// says. Header names are compared without case (HTTP's are lower case
/// already, Kafka's are whatever the producer wrote).
pub fn extract<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<TraceContext> {
    let mut traceparent = None;
    let mut seen_traceparent = false;
    let mut tracestate = String::new();
    let mut tracestate_dropped = false;
    for (name, value) in pairs {
        if name.eq_ignore_ascii_case(TRACEPARENT) {
            if seen_traceparent {
                return None;
            }
            seen_traceparent = true;
            traceparent = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case(TRACESTATE) && !tracestate_dropped {
            // Bounded as it is collected, whatever the number of headers.
            match std::str::from_utf8(value) {
                Ok(v) if tracestate.len() + 1 + v.len() <= MAX_TRACESTATE_BYTES => {
                    if !tracestate.is_empty() {
                        tracestate.push(',');
                    }
                    tracestate.push_str(v);
                }
                _ => tracestate_dropped = true,
            }
        }
    }
    let tracestate = (!tracestate_dropped && !tracestate.is_empty()).then_some(tracestate);
    TraceContext::parse(traceparent?, tracestate.as_deref())
}

/// The headers that carry `ctx` on to the next hop.
pub fn inject(ctx: &TraceContext) -> Vec<(&'static str, String)> {
    let mut pairs = vec![(TRACEPARENT, ctx.traceparent())];
    if let Some(state) = &ctx.tracestate {
        pairs.push((TRACESTATE, state.clone()));
    }
    pairs
}

/// `N` bytes written as exactly `2N` lowercase hex digits.
fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A `tracestate` worth passing on: printable ASCII, bounded, each member
/// a `key=value` pair. Not a full grammar check: the next vendor reads its
/// own member, and the bound is what protects this service.
fn valid_tracestate(s: &str) -> Option<&str> {
    let s = s.trim_matches([' ', '\t']);
    if s.is_empty()
        || s.len() > MAX_TRACESTATE_BYTES
        || !s.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return None;
    }
    let members: Vec<&str> = s
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    let well_formed = members.iter().all(|m| {
        m.split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
    });
    (well_formed && (1..=MAX_TRACESTATE_MEMBERS).contains(&members.len())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn pairs<'a>(h: &'a [(&'a str, &'a [u8])]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        h.iter().copied()
    }

    #[test]
    fn traceparent_is_read_only_when_well_formed() {
        let long_future = format!(
            "cc-{}-{}-01-{}",
            "a".repeat(32),
            "b".repeat(16),
            "x".repeat(300)
        );
        // (value, read as (trace id, parent id, flags))
        type Read<'a> = Option<(&'a str, &'a str, u8)>;
        let cases: &[(&str, Read<'_>)] = &[
            (
                VALID,
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0)),
            ),
            // A later version may append fields; read as 00.
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes",
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)),
            ),
            // Malformed.
            ("", None),
            ("00", None),
            ("garbage", None),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                None,
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            // Non-ASCII, and an oversized one.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0١",
                None,
            ),
            (long_future.as_str(), None),
        ];
        for (value, expected) in cases {
            let got = TraceContext::parse(value, None);
            let got = got
                .as_ref()
                .map(|c| (hex::encode(c.trace_id), hex::encode(c.parent_id), c.flags));
            let expected = expected.map(|(t, p, f)| (t.to_string(), p.to_string(), f));
            assert_eq!(got, expected, "{value:?}");
        }
    }

    #[test]
    fn tracestate_is_kept_only_when_bounded_and_printable() {
        let oversized = format!("a={}", "x".repeat(MAX_TRACESTATE_BYTES));
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        let many = many.join(",");
        let cases: &[(&str, Option<&str>)] = &[
            ("congo=t61rcWkgMzE", Some("congo=t61rcWkgMzE")),
            (
                "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ),
            ("", None),
            ("novalue", None),
            ("=v", None),
            ("k=é", None),
            ("k=v\u{7}", None),
            (oversized.as_str(), None),
            (many.as_str(), None),
        ];
        for (state, expected) in cases {
            let ctx = TraceContext::parse(VALID, Some(state)).expect("a valid traceparent");
            assert_eq!(ctx.tracestate.as_deref(), *expected, "{state:?}");
        }
    }

    #[test]
    fn headers_are_extracted_from_pairs() {
        let oversized = "x".repeat(MAX_TRACEPARENT_BYTES + 1);
        let state_half = format!("a={}", "x".repeat(300));
        type Case<'a> = (
            &'a [(&'a str, &'a [u8])],
            Option<(&'a str, Option<&'a str>)>,
        );
        let cases: &[Case<'_>] = &[
            (&[("traceparent", VALID.as_bytes())], Some((VALID, None))),
            (
                &[("TraceParent", VALID.as_bytes()), ("tracestate", b"a=1")],
                Some((VALID, Some("a=1"))),
            ),
            // Two tracestate headers are one list.
            (
                &[
                    ("tracestate", b"a=1"),
                    ("traceparent", VALID.as_bytes()),
                    ("tracestate", b"b=2"),
                ],
                Some((VALID, Some("a=1,b=2"))),
            ),
            // Too much tracestate in total: dropped, the traceparent kept.
            (
                &[
                    ("traceparent", VALID.as_bytes()),
                    ("tracestate", state_half.as_bytes()),
                    ("tracestate", state_half.as_bytes()),
                ],
                Some((VALID, None)),
            ),
            // A tracestate that is not UTF-8: dropped, the traceparent kept.
            (
                &[("traceparent", VALID.as_bytes()), ("tracestate", b"a=\xff")],
                Some((VALID, None)),
            ),
            // Other headers alone, none, two traceparents, bad bytes.
            (&[("scimflow-reply-to", b"t")], None),
            (&[], None),
            (
                &[
                    ("traceparent", VALID.as_bytes()),
                    ("traceparent", VALID.as_bytes()),
                ],
                None,
            ),
            (&[("traceparent", b"\xff\xfe")], None),
            (&[("traceparent", oversized.as_bytes())], None),
            (&[("traceparent", b"00-\xc3\xa9")], None),
        ];
        for (headers, expected) in cases {
            let got = extract(pairs(headers));
            let got = got
                .as_ref()
                .map(|c| (c.traceparent(), c.tracestate.clone()));
            let expected = expected.map(|(p, s)| (p.to_string(), s.map(str::to_string)));
            assert_eq!(got, expected, "{headers:?}");
        }
    }

    #[test]
    fn inject_writes_what_extract_reads() {
        for state in [None, Some("a=1,b=2")] {
            let ctx = TraceContext::parse(VALID, state).expect("valid");
            let written = inject(&ctx);
            assert_eq!(written[0], (TRACEPARENT, VALID.to_string()));
            assert_eq!(written.len(), 1 + usize::from(state.is_some()));
            let read = extract(written.iter().map(|(k, v)| (*k, v.as_bytes())));
            assert_eq!(read, Some(ctx));
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic(s in "\\PC{0,80}", state in "\\PC{0,40}") {
            let _ = TraceContext::parse(&s, Some(&state));
        }

        #[test]
        fn a_written_context_reads_back(
            trace_id in any::<[u8; 16]>(),
            parent_id in any::<[u8; 8]>(),
            flags in any::<u8>(),
        ) {
            prop_assume!(trace_id != [0; 16] && parent_id != [0; 8]);
            let ctx = TraceContext { trace_id, parent_id, flags, tracestate: None };
            prop_assert_eq!(TraceContext::parse(&ctx.traceparent(), None), Some(ctx));
        }
    }
}
