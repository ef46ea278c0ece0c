//! `pusher-local recordings …`: works on the database file directly (a running recorder may
//! keep writing; SQLite's WAL lets both work).

use crate::cli::{Cli, RecordingsAction};
use crate::config::Config;
use crate::recorder::{self, Fixture, Store};

use super::{local_config, terminal};

/// `pusher-local recordings …`: works on the database file directly (a running recorder may
/// keep writing; SQLite's WAL lets both work).
pub fn run(cli: &Cli, action: RecordingsAction) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let store = match (Store::open_existing(&config.db), &action) {
        (Ok(store), RecordingsAction::List) => return list_recordings(Some(&store)),
        // No database yet is no error for a listing: it says so.
        (Err(recorder::StoreError::Missing(db)), RecordingsAction::List) => {
            println!("no recordings in {} yet (record with pusher-local --record NAME)", db.display());
            return list_recordings(None);
        }
        (opened, _) => opened?,
    };
    match action {
        RecordingsAction::List => unreachable!("listed above"),
        RecordingsAction::Show { name } => {
            let (summary, events) = store.read(&name)?;
            print!("{}", terminal::recording(&summary, &events));
        }
        RecordingsAction::Delete { name } => {
            store.delete(&name)?;
            println!("deleted recording {name:?} from {}", config.db.display());
        }
        RecordingsAction::Export { name, output } => {
            let (summary, events) = store.read(&name)?;
            let fixture = recorder::fixture_of(&summary, events);
            let path = output.unwrap_or_else(|| config.fixtures.join(format!("{name}.json")));
            fixture.save(&path)?;
            println!("exported {} events of {name:?} to {}", fixture.events.len(), path.display());
        }
    }
    Ok(())
}

/// The recordings of `store` (none without a database), then the built-in fixtures.
fn list_recordings(store: Option<&Store>) -> anyhow::Result<()> {
    if let Some(store) = store {
        print!("{}", terminal::recordings(&store.list()?));
    }
    let built_in: Vec<&str> = recorder::fixture::BUILT_IN.iter().map(|(name, _)| *name).collect();
    println!("built-in fixtures, replayed by name: {}", built_in.join(", "));
    Ok(())
}

/// A fixture file, a fixture of the folder, a recording, or a built-in fixture, in that order.
pub fn find_fixture(config: &Config, what: &str) -> anyhow::Result<(String, Fixture)> {
    let path = std::path::Path::new(what);
    if path.is_file() {
        return Ok((what.to_owned(), Fixture::load(path)?));
    }
    let in_folder = config.fixtures.join(format!("{what}.json"));
    if in_folder.is_file() {
        return Ok((what.to_owned(), Fixture::load(&in_folder)?));
    }
    match Store::open_existing(&config.db).and_then(|store| store.read(what)) {
        Ok((summary, events)) => Ok((what.to_owned(), recorder::fixture_of(&summary, events))),
        Err(recorder::StoreError::Missing(_) | recorder::StoreError::NotFound(_)) => {
            match recorder::fixture::built_in(what) {
                Some(fixture) => Ok((what.to_owned(), fixture)),
                None => anyhow::bail!(
                    "{what:?} is not a fixture file, not a fixture in {}, and not a recording in {}",
                    config.fixtures.display(),
                    config.db.display()
                ),
            }
        }
        Err(e) => Err(e.into()),
    }
}
