//! `pusher-local webhooks list | show ID | resend ID`: calls the control API of a running
//! server through [`ControlClient`].

use crate::cli::{Cli, WebhooksAction};

use super::client::{render_list, render_record, ControlClient};
use super::{current_thread_runtime, local_addrs, local_config, warn_insecure};

/// `pusher-local webhooks …`: calls the control API of a running server. Without `--url` the
/// server's address comes from the same settings the server reads (flags, variables, file).
pub fn run(cli: &Cli, action: WebhooksAction, url: Option<String>, json: bool) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let base = match url {
        Some(url) => url,
        None => format!("http://{}", local_addrs(&config).0),
    };
    let trust = config.tls.client_trust();
    warn_insecure(&trust, &base);
    // A token the server made up is not known here: it is in its banner (--control-token).
    let token = config.control_token.as_ref().filter(|t| !t.generated).map(|t| t.token.expose());
    let client = ControlClient::new(base, &trust, token)?;
    current_thread_runtime()?.block_on(async {
        let (answer, text) = match action {
            WebhooksAction::List => {
                let list = client.list().await?;
                let text = render_list(&list);
                (list, text)
            }
            WebhooksAction::Show { id } => {
                let record = client.show(id).await?;
                let text = render_record(&record);
                (record, text)
            }
            WebhooksAction::Resend { id, to } => {
                let answer = client.resend(id, to.as_deref()).await?;
                let urls: Vec<&str> =
                    answer["urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str()).collect();
                let text = format!(
                    "webhook #{id} queued again for {} (see `pusher-local webhooks show {id}` for the outcome)\n",
                    urls.join(", ")
                );
                (answer, text)
            }
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            print!("{text}");
        }
        anyhow::Ok(())
    })
}
