//! A tenant's writes and rejections per hour as an SVG bar chart, drawn
//! on the server: the numbers become rectangles here, the template only
//! places them. Writes stack under rejections; each bar names its hour
//! and counts for screen readers and on hover.

use scimflow_shared::store::activity::HourCounts;

/// The drawing area, in SVG user units.
pub const BAR_WIDTH: i64 = 5;
pub const PLOT_HEIGHT: i64 = 140;
/// Room under the bars for the day labels.
pub const LABEL_HEIGHT: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: i64,
    pub write_y: i64,
    pub write_height: i64,
    pub reject_y: i64,
    pub reject_height: i64,
    /// "2026-12-01 09:00 UTC: 12 writes, 1 rejection".
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayMark {
    pub x: i64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub plot_height: i64,
    pub bars: Vec<Bar>,
    pub days: Vec<DayMark>,
    /// The tallest bar's total: the top of the scale.
    pub max: i64,
    pub writes: i64,
    pub rejections: i64,
    /// Where the kept log begins, when hours before it were pruned.
    pub log_begins: Option<DayMark>,
}

/// A count's height on a scale topped by `max`: proportional, and never
/// flat for a count above zero.
fn scaled(count: i64, max: i64) -> i64 {
    if count <= 0 || max <= 0 {
        return 0;
    }
    let (count, max) = (i128::from(count), i128::from(max));
    let h = (count * i128::from(PLOT_HEIGHT) + max - 1) / max;
    i64::try_from(h)
        .unwrap_or(PLOT_HEIGHT)
        .clamp(1, PLOT_HEIGHT)
}

fn plural(n: i64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `log_begins`: when the kept log begins, if hours of the chart were
/// pruned; the chart marks it, so that pruned hours do not read as quiet.
pub fn draw(hours: &[HourCounts], log_begins: Option<chrono::DateTime<chrono::Utc>>) -> Chart {
    let max = hours
        .iter()
        .map(|h| h.writes.saturating_add(h.rejections))
        .max()
        .unwrap_or(0);
    let bars = hours
        .iter()
        .zip(0i64..)
        .map(|(h, i)| {
            let write_height = scaled(h.writes, max);
            let reject_height = scaled(h.rejections, max).min(PLOT_HEIGHT - write_height);
            Bar {
                x: i * BAR_WIDTH,
                write_y: PLOT_HEIGHT - write_height,
                write_height,
                reject_y: PLOT_HEIGHT - write_height - reject_height,
                reject_height,
                label: format!(
                    "{}: {}, {}",
                    h.hour.format("%Y-%m-%d %H:00 UTC"),
                    plural(h.writes, "write"),
                    plural(h.rejections, "rejection")
                ),
            }
        })
        .collect();
    let days = hours
        .iter()
        .zip(0i64..)
        .filter(|(h, _)| h.hour.format("%H").to_string() == "00")
        .map(|(h, i)| DayMark {
            x: i * BAR_WIDTH,
            label: h.hour.format("%b %d").to_string(),
        })
        .collect();
    Chart {
        width: (hours.len() as i64).max(1) * BAR_WIDTH,
        height: PLOT_HEIGHT + LABEL_HEIGHT,
        plot_height: PLOT_HEIGHT,
        bars,
        days,
        max,
        log_begins: log_begins.and_then(|at| {
            let i = hours.iter().rposition(|h| h.hour <= at)?;
            Some(DayMark {
                x: i as i64 * BAR_WIDTH,
                label: format!("log begins {}", at.format("%b %d %H:%M")),
            })
        }),
        writes: hours.iter().fold(0i64, |n, h| n.saturating_add(h.writes)),
        rejections: hours
            .iter()
            .fold(0i64, |n, h| n.saturating_add(h.rejections)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn hour(h: i64, writes: i64, rejections: i64) -> HourCounts {
        let start = DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default(); // 2026-12-01 00:00 UTC
        HourCounts {
            hour: start + chrono::Duration::hours(h),
            writes,
            rejections,
        }
    }

    #[test]
    fn bars_are_scaled_to_the_busiest_hour() {
        let chart = draw(
            &[
                hour(0, 100, 0),
                hour(1, 50, 50),
                hour(2, 1, 0),
                hour(3, 0, 0),
            ],
            None,
        );
        let heights: Vec<(i64, i64)> = chart
            .bars
            .iter()
            .map(|b| (b.write_height, b.reject_height))
            .collect();
        assert_eq!(heights, [(140, 0), (70, 70), (2, 0), (0, 0)]);
        assert_eq!((chart.max, chart.writes, chart.rejections), (100, 151, 50));
        let b = &chart.bars[1];
        assert_eq!((b.x, b.write_y, b.reject_y), (5, 70, 0));
        assert_eq!(b.label, "2026-12-01 01:00 UTC: 50 writes, 50 rejections");
        assert_eq!(
            chart.bars[2].label,
            "2026-12-01 02:00 UTC: 1 write, 0 rejections"
        );
        assert_eq!(
            chart.days,
            [DayMark {
                x: 0,
                label: "Dec 01".into()
            }]
        );
    }

    #[test]
    fn a_quiet_week_is_flat_and_a_huge_hour_stays_in_the_frame() {
        let quiet = draw(&[hour(0, 0, 0), hour(1, 0, 0)], None);
        assert!(quiet
            .bars
            .iter()
            .all(|b| b.write_height == 0 && b.reject_height == 0));
        let huge = draw(&[hour(0, i64::MAX, i64::MAX), hour(1, 1, 0)], None);
        for b in &huge.bars {
            assert!(b.write_height + b.reject_height <= PLOT_HEIGHT, "{b:?}");
            assert!(b.reject_y >= 0);
        }
        assert_eq!(draw(&[], None).bars.len(), 0);
    }

    #[test]
    fn the_start_of_a_pruned_log_is_marked_where_it_falls() {
        let hours = [hour(0, 0, 0), hour(1, 0, 0), hour(2, 5, 0), hour(3, 9, 0)];
        let begins = hour(2, 0, 0).hour + chrono::Duration::minutes(40);
        let mark = draw(&hours, Some(begins)).log_begins;
        assert_eq!(
            mark,
            Some(DayMark {
                x: 2 * BAR_WIDTH,
                label: "log begins Dec 01 02:40".into()
            })
        );
        assert_eq!(draw(&hours, None).log_begins, None);
    }
}
