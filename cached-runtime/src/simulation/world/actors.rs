//! The world's actors: a caller (its call, and its loader reading the database), and a
//! writer that updates a row then invalidates its key or tag as `Cache` does.

use std::sync::Arc;
use std::time::Duration;

use super::{DbError, Out, Row, World};
use crate::cache::Target;
use crate::key::{full_key, tag_key};
use crate::read_path::read_through;
use crate::shape::ResultOption;
use crate::simulation::plan::Action;
use crate::simulation::record::{Note, Served};
use crate::store::Store;
use crate::store::scripted::attributed;
use crate::sync::lock;

impl World {
    pub(super) async fn act(self: Arc<Self>, id: u64, process: usize, action: Action) {
        match action {
            Action::Call {
                func,
                key,
                load,
                fails,
                dropped_after,
                ..
            } => {
                let loader = self.clone().loader(id, process, func, key, load, fails);
                self.call(id, process, func, key, loader, dropped_after).await;
            }
            Action::Write {
                func,
                key,
                tag,
                present,
                ..
            } => self.write(id, process, func, key, tag, present).await,
            _ => {}
        }
    }

    async fn call(
        &self,
        id: u64,
        process: usize,
        func: usize,
        key: usize,
        loader: impl Future<Output = Out>,
        dropped_after: Option<Duration>,
    ) {
        let (func_plan, p) = (&self.plan.funcs[func], &self.processes[process]);
        let rendered = &func_plan.keys[key];
        let key = full_key("", rendered);
        self.note(Note::CallStarted {
            call: id,
            process,
            func,
            key,
        });
        let ended = Unless::new(self, Note::CallDropped { call: id });
        let came = crate::read_path::Came::new();
        let read = async {
            read_through::<ResultOption<Row, DbError>, _>(
                &p.cx,
                &p.store,
                &func_plan.policy,
                (rendered, &func_plan.tags),
                loader,
                &came,
            )
            .await
        };
        let read = attributed(id, read);
        let out = match dropped_after {
            Some(after) => tokio::time::timeout(after, read).await.ok(),
            None => Some(read.await),
        };
        if let Some(out) = out {
            let served = match out {
                Ok(Some(row)) => Served::Row {
                    version: row.version,
                    load: row.load,
                },
                Ok(None) => Served::Absent,
                Err(DbError) => Served::Failed,
            };
            ended.instead(Note::CallEnded { call: id, served });
        }
    }

    /// The loader of call `id`: reads the row when it starts, takes `time`, then
    /// answers with what it read, or fails.
    async fn loader(
        self: Arc<Self>,
        id: u64,
        process: usize,
        func: usize,
        key: usize,
        time: Duration,
        fails: bool,
    ) -> Out {
        let key = full_key("", &self.plan.funcs[func].keys[key]);
        let (version, present) = lock(&self.db).get(&key).copied().unwrap_or((0, true));
        let store = &self.processes[process].store;
        let subscription = store.announcements();
        self.note(Note::LoadStarted {
            call: id,
            version,
            present,
            subscription,
        });
        let ended = Unless::new(&self, Note::LoadDropped { call: id });
        tokio::time::sleep(time).await;
        ended.instead(Note::LoadEnded {
            call: id,
            failed: fails,
            subscription: store.announcements(),
            reachable: store.reachable(),
        });
        match (fails, present) {
            (true, _) => Err(DbError),
            (false, true) => Ok(Some(Row { version, load: id })),
            (false, false) => Ok(None),
        }
    }

    /// Writes the row, then invalidates its key or its function's tag through
    /// `Target::invalidate`, as `Cache` does.
    async fn write(&self, id: u64, process: usize, func: usize, key: usize, tag: bool, present: bool) {
        let func_plan = &self.plan.funcs[func];
        let key = full_key("", &func_plan.keys[key]);
        let version = {
            let mut db = lock(&self.db);
            let row = db.entry(key.clone()).or_insert((0, true));
            *row = (row.0 + 1, present);
            row.0
        };
        self.note(Note::Wrote {
            key: key.clone(),
            version,
            present,
        });
        let target = match func_plan.tags.first() {
            Some(tag_name) if tag => Target::Tag(tag_key("", tag_name)),
            _ => Target::Key(key),
        };
        let (Target::Key(name) | Target::Tag(name)) = &target;
        self.note(Note::InvalidationStarted {
            id,
            process,
            target: name.clone(),
        });
        let p = &self.processes[process];
        let done = attributed(id, target.invalidate(&p.cx.flights, &p.store)).await;
        self.note(Note::InvalidationEnded { id, ok: done.is_ok() });
    }
}

/// Notes `unless` when dropped, unless told what to note instead: a call or load that
/// never finished (its caller gave up, its process died) says so.
struct Unless<'a> {
    world: &'a World,
    note: Option<Note>,
}

impl<'a> Unless<'a> {
    fn new(world: &'a World, unless: Note) -> Self {
        Self {
            world,
            note: Some(unless),
        }
    }

    fn instead(mut self, note: Note) {
        self.note = Some(note);
    }
}

impl Drop for Unless<'_> {
    fn drop(&mut self) {
        if let Some(note) = self.note.take() {
            self.world.note(note);
        }
    }
}
