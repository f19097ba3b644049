//! `/schedules`: each schedule of serve with its next windows (blackouts taken out) and its
//! blackouts; `/locks`: the locks held now.

use super::page::{PageUser, Section, escape, page, problem};
use super::runs_list::encode;
use crate::app;
use crate::web::WebState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

/// Next windows shown per schedule.
const NEXT_WINDOWS: usize = 5;

pub async fn schedules_page(user: PageUser, State(state): State<WebState>) -> Response {
    let now = jiff::Timestamp::now();
    let mut body = String::new();
    if state.schedules.is_empty() {
        body.push_str("<p>serve has no schedules.</p>\n");
    }
    for schedule in state.schedules.iter() {
        let _ = writeln!(
            body,
            "<section class=\"schedule\" data-schedule=\"{name}\">\n<h2>{name}</h2>\n\
             <table class=\"facts\">\n<tr><th scope=\"row\">Runbook</th><td><code>{}</code></td></tr>\n\
             <tr><th scope=\"row\">Cron</th><td><code>{}</code> in {}</td></tr>\n\
             <tr><th scope=\"row\">Window</th><td>{}</td></tr>\n\
             <tr><th scope=\"row\">Overlap</th><td>{}</td></tr>\n\
             <tr><th scope=\"row\">Enabled</th><td>{}</td></tr>\n</table>",
            escape(&schedule.runbook.display().to_string()),
            escape(&schedule.cron_text),
            escape(&schedule.zone_name),
            schedule
                .window
                .map(|w| escape(&crate::runbook::Duration(w).to_string()))
                .unwrap_or_else(|| "none".to_owned()),
            format!("{:?}", schedule.overlap).to_lowercase(),
            if schedule.enabled {
                "<span aria-hidden=\"true\">✓</span> yes"
            } else {
                "<span aria-hidden=\"true\">✗</span> no: it never fires"
            },
            name = escape(&schedule.name),
        );
        let fires = schedule.upcoming(now, NEXT_WINDOWS);
        body.push_str("<h3>Next windows</h3>\n");
        if fires.is_empty() {
            body.push_str("<p>None ahead.</p>\n");
        } else {
            body.push_str(
                "<table class=\"windows\"><thead><tr><th scope=\"col\">Opens</th>\
                 <th scope=\"col\">Closes</th></tr></thead><tbody>\n",
            );
            for fire in fires {
                let closes = schedule
                    .window_until(fire.timestamp())
                    .map(|until| {
                        until
                            .to_zoned(schedule.zone.clone())
                            .strftime("%Y-%m-%d %H:%M %:z %a")
                            .to_string()
                    })
                    .unwrap_or_else(|| "–".to_owned());
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(&fire.strftime("%Y-%m-%d %H:%M %:z %a").to_string()),
                    escape(&closes)
                );
            }
            body.push_str("</tbody></table>\n");
        }
        body.push_str("<h3>Blackouts</h3>\n");
        let ahead: Vec<_> = schedule.blackouts.iter().filter(|b| b.end > now).collect();
        if ahead.is_empty() {
            body.push_str("<p>None ahead.</p>\n");
        } else {
            body.push_str("<ul class=\"blackouts\">\n");
            for blackout in ahead {
                let zoned = |at: jiff::Timestamp| {
                    at.to_zoned(schedule.zone.clone())
                        .strftime("%Y-%m-%d %H:%M %:z")
                        .to_string()
                };
                let _ = writeln!(
                    body,
                    "<li>{} from {} until {}{}</li>",
                    escape(&blackout.what),
                    escape(&zoned(blackout.start)),
                    escape(&zoned(blackout.end)),
                    if blackout.contains(now) {
                        " <b>(now)</b>"
                    } else {
                        ""
                    }
                );
            }
            body.push_str("</ul>\n");
        }
        body.push_str("</section>\n");
    }
    page(&user, Section::Schedules, "Schedules", &body).into_response()
}

pub async fn locks_page(user: PageUser, State(state): State<WebState>) -> Response {
    let locks = match app::locks(state.store.as_ref()).await {
        Ok(list) => list.locks,
        Err(error) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                &user,
                Section::Locks,
                &format!("cannot read the locks: {error}"),
                "/locks",
            );
        }
    };
    let mut body = String::new();
    if locks.is_empty() {
        body.push_str("<p>No lock is held.</p>\n");
    } else {
        body.push_str(
            "<table class=\"locks\"><thead><tr><th scope=\"col\">Lock</th><th scope=\"col\">Run</th>\
             <th scope=\"col\">Step</th><th scope=\"col\">Runbook</th><th scope=\"col\">Since</th>\
             <th scope=\"col\">Lease until</th></tr></thead><tbody>\n",
        );
        for lock in &locks {
            let _ = writeln!(
                body,
                "<tr data-lock=\"{}\"><td><code>{}</code></td><td><a href=\"/runs/{}\"><code>{}</code></a></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&lock.name),
                escape(&lock.name),
                escape(&encode(&lock.holder.run_id)),
                escape(&lock.holder.run_id),
                escape(if lock.holder.step.is_empty() {
                    "(the whole run)"
                } else {
                    &lock.holder.step
                }),
                escape(&lock.holder.runbook),
                escape(&lock.acquired_at),
                escape(
                    lock.expires_at
                        .as_deref()
                        .unwrap_or("kept while the run waits for an approval")
                ),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    page(&user, Section::Locks, "Locks", &body).into_response()
}
