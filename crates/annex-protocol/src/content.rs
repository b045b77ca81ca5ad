//! Ready-made content ends for transfers held in memory: a [`PutSource`]
//! over bytes and a [`GetSink`] that collects into a vector.

use std::io::Cursor;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::repository::{ByteStream, GetSink, PutData, PutSource, RepoError, Validity};

/// Content to put, from memory.
#[derive(Debug, Clone)]
pub struct BytesSource {
    cursor: Cursor<Bytes>,
    validity: Validity,
    offset: Option<u64>,
    announced: Option<u64>,
}

impl BytesSource {
    /// Puts `content`, vouching for it as VALID.
    pub fn new(content: impl Into<Bytes>) -> Self {
        BytesSource {
            cursor: Cursor::new(content.into()),
            validity: Validity::Valid,
            offset: None,
            announced: None,
        }
    }

    /// Announces `len` bytes (the DATA length) whatever the content holds,
    /// as a sender that lies or breaks off would: for testing receivers.
    pub fn announcing(mut self, len: u64) -> Self {
        self.announced = Some(len);
        self
    }

    /// Sends `validity` after the content instead of VALID.
    pub fn with_validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    /// The offset the receiver asked for, once it asked.
    pub fn offset_requested(&self) -> Option<u64> {
        self.offset
    }
}

#[async_trait]
impl PutSource for BytesSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        let total = self.cursor.get_ref().len() as u64;
        let offset_in = offset.min(total);
        self.offset = Some(offset);
        self.cursor.set_position(offset_in);
        Ok(PutData::Stream {
            len: self.announced.unwrap_or(total - offset_in),
            stream: &mut self.cursor,
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(self.validity))
    }
}

/// Collects the content of a get in memory, up to a limit; accepts it
/// unless the sender says it is INVALID.
#[derive(Debug, Clone)]
pub struct VecSink {
    data: Vec<u8>,
    validity: Option<Validity>,
    limit: u64,
}

impl VecSink {
    /// A sink that refuses content longer than `limit` bytes.
    pub fn new(limit: u64) -> Self {
        VecSink {
            data: Vec::new(),
            validity: None,
            limit,
        }
    }

    /// The content received.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the content received.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// What the sender said of the content's validity (`None` before the
    /// transfer ends, or in protocol version 0).
    pub fn validity(&self) -> Option<Validity> {
        self.validity
    }
}

#[async_trait]
impl GetSink for VecSink {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        if len > self.limit.saturating_sub(self.data.len() as u64) {
            return Err(RepoError::Other(format!(
                "content of {len} bytes is over the limit of {} bytes",
                self.limit
            )));
        }
        let n = stream.take(len).read_to_end(&mut self.data).await?;
        if (n as u64) < len {
            return Err(RepoError::Other("content ended early".into()));
        }
        Ok(())
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        self.validity = validity;
        Ok(validity != Some(Validity::Invalid))
    }
}
