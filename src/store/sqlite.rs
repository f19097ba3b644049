//! The embedded default store: one SQLite file (being written).
use super::*;
pub struct SqliteStore;
impl SqliteStore {
    pub async fn open(_path: &std::path::Path) -> Result<Self, StoreError> {
        Err(StoreError::Location("not yet".to_owned()))
    }
}
impl Store for SqliteStore {
    fn location(&self) -> String {
        unimplemented!()
    }
    fn create<'a>(&'a self, _: &'a str, _: &'a Owner, _: &'a Envelope) -> StoreFuture<'a, Lease> {
        unimplemented!()
    }
    fn claim<'a>(&'a self, _: &'a str, _: &'a Owner) -> StoreFuture<'a, Lease> {
        unimplemented!()
    }
    fn renew<'a>(&'a self, _: &'a Lease) -> StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn release<'a>(&'a self, _: &'a Lease) -> StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn append<'a>(&'a self, _: &'a Lease, _: u64, _: &'a [Envelope]) -> StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn events<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Vec<Envelope>> {
        unimplemented!()
    }
    fn run<'a>(&'a self, _: &'a str) -> StoreFuture<'a, RunSummary> {
        unimplemented!()
    }
    fn runs<'a>(&'a self) -> StoreFuture<'a, Vec<RunSummary>> {
        unimplemented!()
    }
    fn decide<'a>(&'a self, _: &'a str, _: &'a Decision) -> StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn decisions<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Vec<Decision>> {
        unimplemented!()
    }
}
