//! Compression and inflation of messages, and the shared encodings of prepared messages.

use super::*;

impl PerMessageDeflate {
    pub(super) fn compress(
        &mut self,
        params: DeflateParams,
        data: &[u8],
        fin: bool,
    ) -> Result<Bytes, ExtensionError> {
        let key = self.compressor_key(params);
        let keep_history = self.releases_idle_state() && !params.compress_no_context_takeover();
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            slot @ None => {
                let owner = keep_history.then_some(self.tx_tag);
                let pooled = self.pool.as_ref().and_then(|pool| pool.take_compressor(key, owner));
                let (mut compressor, ours) = pooled.unwrap_or_else(|| (Compressor::new(key), false));
                // Our own state, back untouched, already holds the context.
                if keep_history && !ours && !self.tx_history.is_empty() {
                    compressor.prime(self.tx_history.as_slice())?;
                }
                slot.insert(compressor)
            }
        };
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        let ending = compressor.compress(data, &mut out)?;
        if keep_history {
            self.tx_history.push(data, 1 << key.bits);
        }
        if fin {
            end_message(&mut out, ending);
            if params.compress_no_context_takeover() || keep_history {
                match &self.pool {
                    Some(pool) => {
                        if let Some(compressor) = self.compressor.take() {
                            self.tx_tag = pool.next_tag();
                            let owner = keep_history.then_some(self.tx_tag);
                            pool.give_compressor(compressor, owner);
                        }
                    }
                    // No pool: the connection keeps its own state, fresh for the next message.
                    None => {
                        if let Some(compressor) = &mut self.compressor {
                            compressor.reset();
                        }
                    }
                }
            }
        }
        Ok(into_bytes(out))
    }

    /// Inflates `input` (part of the current message), producing at most `max_output` bytes:
    /// more is an error with [`CloseCode::MESSAGE_TOO_BIG`], and the output buffer never grows past
    /// `max_output + 1` bytes.
    pub(super) fn inflate(
        &mut self,
        input: &[u8],
        max_output: usize,
        flush: FlushDecompress,
    ) -> Result<Bytes, ExtensionError> {
        let Some(params) = self.params else { return Ok(Bytes::copy_from_slice(input)) };
        if self.rx_stream_ended {
            // The DEFLATE stream ended (BFINAL): what follows is ignored.
            return Ok(Bytes::new());
        }
        let bits = params.inflate_window_bits();
        let keep_history = self.releases_idle_state() && !params.inflate_no_context_takeover();
        let decompressor = match &mut self.decompressor {
            Some(decompressor) => decompressor,
            slot @ None => {
                let owner = keep_history.then_some(self.rx_tag);
                let pooled = self.pool.as_ref().and_then(|pool| pool.take_decompressor(bits, owner));
                let (mut decompressor, ours) =
                    pooled.unwrap_or_else(|| (Decompress::new_with_window_bits(false, bits), false));
                // Our own state, back untouched, already holds the context.
                if keep_history && !ours && !self.rx_history.is_empty() {
                    decompressor.set_dictionary(self.rx_history.as_slice()).map_err(|_| {
                        ExtensionError::new(CloseCode::INTERNAL_ERROR, "priming the inflater failed")
                    })?;
                }
                slot.insert(decompressor)
            }
        };
        // One byte more than allowed, to tell "exactly the budget" from "more".
        let limit = max_output.saturating_add(1);
        let mut out: Vec<u8> = Vec::new();
        let mut input = input;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= limit {
                    return Err(too_big());
                }
                let next = if out.capacity() == 0 {
                    input.len().saturating_mul(8).clamp(INFLATE_FIRST_STEP.0, INFLATE_FIRST_STEP.1)
                } else {
                    out.capacity().saturating_mul(2)
                };
                out.reserve_exact(next.min(limit) - out.len());
            }
            let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
            let status = decompressor.decompress_vec(input, &mut out, flush).map_err(|_| corrupt())?;
            let consumed = usize::try_from(decompressor.total_in() - in_before).unwrap_or(input.len());
            let produced = decompressor.total_out() - out_before;
            input = &input[consumed.min(input.len())..];
            if out.len() > max_output {
                return Err(too_big());
            }
            if status == Status::StreamEnd {
                self.rx_stream_ended = true;
                break;
            }
            if out.len() < out.capacity() {
                // Done when all input is consumed and the inflater did not run out of room.
                if input.is_empty() {
                    break;
                }
                // Input left, room left, and no progress: the inflater is stuck.
                if consumed == 0 && produced == 0 {
                    return Err(corrupt());
                }
            }
        }
        if keep_history {
            self.rx_history.push(&out, 1 << bits);
        }
        Ok(into_bytes(out))
    }

    /// The end of an incoming message: release or restart the inflater as needed.
    pub(super) fn end_inbound_message(&mut self) {
        let reset = self.params.is_some_and(|p| p.inflate_no_context_takeover());
        if reset || self.rx_stream_ended {
            // A new DEFLATE stream follows: nothing to carry over.
            self.rx_history.clear();
        }
        let history = self.releases_idle_state();
        match &self.pool {
            Some(pool) if reset || self.rx_stream_ended || history => {
                if let (Some(decompressor), Some(params)) = (self.decompressor.take(), self.params) {
                    // Kept as ours (context in it) only if the context continues.
                    self.rx_tag = pool.next_tag();
                    let owner = (history && !reset && !self.rx_stream_ended).then_some(self.rx_tag);
                    pool.give_decompressor(params.inflate_window_bits(), decompressor, owner);
                }
            }
            // No pool: the connection keeps its own inflater, restarted for a new stream.
            None if reset || self.rx_stream_ended => {
                if let Some(decompressor) = &mut self.decompressor {
                    decompressor.reset(false);
                }
            }
            _ => {}
        }
        self.rx_stream_ended = false;
        self.rx_compressed = false;
    }

    /// Forgets any negotiation and compression state.
    pub(super) fn reset_state(&mut self, params: DeflateParams) {
        self.params = Some(params);
        self.tx_tag = NO_TAG;
        self.rx_tag = NO_TAG;
        self.compressor = None;
        self.decompressor = None;
        self.tx_history = History::default();
        self.rx_history = History::default();
        self.tx_compressed = false;
        self.rx_compressed = false;
        self.rx_stream_ended = false;
    }
}

/// Hands a buffer out without keeping much unused capacity alive with it.
pub(super) fn into_bytes(mut out: Vec<u8>) -> Bytes {
    if out.capacity() - out.len() > MAX_SPARE.max(out.len() / 8) {
        out.shrink_to_fit();
    }
    Bytes::from(out)
}

/// Ends a message's compressed data: the sync flush's `00 00 ff ff` tail is removed (RFC 7692
/// §7.2.1). When nothing was written since the last flush (an empty message, or an empty final
/// fragment) the flush produced no empty stored block: send the start of one, `00`, which the
/// receiver's `00 00 ff ff` completes (§7.2.3.6). So does data that ends with stored blocks of
/// our own (on a byte boundary, with nothing to remove).
pub(super) fn end_message(out: &mut Vec<u8>, ending: Ending) {
    match ending {
        Ending::SyncFlush if out.ends_with(&TAIL) => out.truncate(out.len() - TAIL.len()),
        Ending::SyncFlush if !out.is_empty() => {}
        Ending::SyncFlush | Ending::Stored => out.push(0x00),
    }
}

/// How a part of a message's compressed data ends.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Ending {
    /// With the compressor's sync flush: an empty stored block, `00 00 ff ff`, unless nothing
    /// was written since the previous flush.
    SyncFlush,
    /// With a stored block written around the compressor (see [`Compressor::compress`]).
    Stored,
}

/// Data longer than this is compressed a probe at a time: a probe that saves less than a
/// sixteenth of its size is judged incompressible (random bytes, or data compressed already),
/// and the data after it goes out as stored blocks, a copy, until the next probe.
const PROBE: usize = 32 << 10;
/// The data stored after the first incompressible probe; doubled after each further one, up
/// to [`MAX_STORED_RUN`].
const STORED_RUN: usize = 64 << 10;
/// The most data stored between two probes.
const MAX_STORED_RUN: usize = 1 << 20;
/// The most data one stored block carries (its length is 16 bits).
const MAX_STORED_BLOCK: usize = 0xffff;

/// What makes two compressors interchangeable (a pooled one is reused only for the same key).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) struct CompressorKey {
    pub(super) level: u32,
    pub(super) bits: u8,
    pub(super) mem_level: u8,
}

/// Our compressor: zlib-rs's safe `Deflate` used directly (rather than through flate2, whose
/// `Compress` cannot set the memory level), raw DEFLATE.
pub(super) struct Compressor {
    pub(super) key: CompressorKey,
    pub(super) inner: Deflate,
}

impl Compressor {
    pub(super) fn new(key: CompressorKey) -> Compressor {
        let config = DeflateConfig {
            level: i32::try_from(key.level).unwrap_or(6),
            // Negative: raw DEFLATE, no zlib header.
            window_bits: -i32::from(key.bits),
            mem_level: i32::from(key.mem_level),
            ..DeflateConfig::default()
        };
        Compressor { key, inner: Deflate::new_with_config(config) }
    }

    /// Makes `history` (at most one window, the last data the peer inflated from us) the
    /// context the next data may refer to.
    pub(super) fn prime(&mut self, history: &[u8]) -> Result<(), ExtensionError> {
        self.inner
            .set_dictionary(history)
            .map(drop)
            .map_err(|_| ExtensionError::new(CloseCode::INTERNAL_ERROR, "priming the compressor failed"))
    }

    /// Compresses all of `data` into `out`, ending on a byte boundary.
    ///
    /// Deflating bytes it cannot shrink costs zlib 20-30 times what compressible text does
    /// (its match search fails at every byte): a peer echoed megabytes of random data would
    /// hold a worker for tens of milliseconds per megabyte. Past [`PROBE`] bytes the data is
    /// therefore deflated a probe at a time, and after a probe that does not pay, the next
    /// run is written as stored blocks (a copy) around the compressor, whose window is then
    /// given the run's end as a dictionary (raw DEFLATE allows it after a flush): its window
    /// is the receiver's again, and matches into that data stay possible. The next probe
    /// decides again, so compressible data after an incompressible stretch is compressed.
    pub(super) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<Ending, ExtensionError> {
        let mut rest = data;
        let mut stored_run = STORED_RUN;
        loop {
            let (probe, after) = rest.split_at(rest.len().min(PROBE));
            let before = out.len();
            self.compress_sync(probe, out)?;
            rest = after;
            if rest.is_empty() {
                return Ok(Ending::SyncFlush);
            }
            let saved = probe.len().saturating_sub(out.len() - before);
            if saved >= probe.len() / 16 {
                self.compress_sync(rest, out)?;
                return Ok(Ending::SyncFlush);
            }
            let (run, after) = rest.split_at(rest.len().min(stored_run));
            self.store(run, out)?;
            rest = after;
            if rest.is_empty() {
                return Ok(Ending::Stored);
            }
            stored_run = (stored_run * 2).min(MAX_STORED_RUN);
        }
    }

    /// Writes `run` as non-final stored blocks (the compressor's output ends on a byte
    /// boundary, after its sync flush) and makes the run's last window the compressor's
    /// context, where the receiver's inflater has it.
    fn store(&mut self, run: &[u8], out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        out.reserve(run.len() + run.len().div_ceil(MAX_STORED_BLOCK) * 5);
        for block in run.chunks(MAX_STORED_BLOCK) {
            // BFINAL 0, BTYPE 00 and the padding to the byte: `00`; then LEN and its complement.
            let len = block.len() as u16;
            out.push(0x00);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        let window = 1usize << self.key.bits;
        self.prime(&run[run.len().saturating_sub(window)..])
    }

    /// Compresses all of `data` into `out`, ending with a sync flush.
    fn compress_sync(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            // Safe code only: expose the spare capacity zeroed (cheap next to compressing).
            let start = out.len();
            out.resize(out.capacity(), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.compress(input, &mut out[start..], DeflateFlush::SyncFlush);
            let written = usize::try_from(self.inner.total_out() - out_before).unwrap_or(0);
            out.truncate(start + written);
            result.map_err(|_| ExtensionError::new(CloseCode::INTERNAL_ERROR, "compression failed"))?;
            let consumed = usize::try_from(self.inner.total_in() - in_before).unwrap_or(input.len());
            input = &input[consumed.min(input.len())..];
            // Done when all input is in and the flush did not run out of room.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    pub(super) fn reset(&mut self) {
        self.inner.reset();
    }
}

/// The last bytes of one direction's data, at most a window: what the peer's (or our)
/// LZ77 window holds, kept to prime the next message's compressor or inflater.
#[derive(Default)]
pub(super) struct History(pub(super) Vec<u8>);

impl History {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub(super) fn clear(&mut self) {
        // Free it: an idle connection should not keep a window it will not use.
        self.0 = Vec::new();
    }

    /// Appends `data`, keeping the last `limit` bytes; the capacity never exceeds `limit`.
    pub(super) fn push(&mut self, data: &[u8], limit: usize) {
        let buf = &mut self.0;
        if data.len() >= limit {
            buf.clear();
            buf.reserve_exact(limit);
            buf.extend_from_slice(&data[data.len() - limit..]);
            return;
        }
        let total = buf.len() + data.len();
        if total > limit {
            let drop = total - limit;
            buf.copy_within(drop.., 0);
            buf.truncate(buf.len() - drop);
        }
        if buf.capacity() < buf.len() + data.len() {
            let want = (buf.len() + data.len()).max(buf.capacity() * 2).min(limit);
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(data);
    }
}

// ===== prepared messages =====

impl CompressorKey {
    /// The key as the `u64` of [`SharedFraming::Encoded`]: level, window bits, memory level.
    pub(super) fn pack(self) -> u64 {
        u64::from(self.level) | u64::from(self.bits) << 32 | u64::from(self.mem_level) << 40
    }

    /// The key [`pack`](Self::pack) made, or `None` for another value.
    pub(super) fn unpack(key: u64) -> Option<Self> {
        let found =
            CompressorKey { level: key as u32, bits: (key >> 32) as u8, mem_level: (key >> 40) as u8 };
        (found.pack() == key).then_some(found)
    }
}

impl PerMessageDeflate {
    /// See [`Extension::shared_framing`]: below the threshold a message is sent as it is;
    /// compressed from a fresh context (no context takeover for our direction), it depends
    /// only on the message and the compressor's settings; with context takeover it is this
    /// connection's own.
    pub(super) fn shared(&self, len: usize) -> SharedFraming {
        let Some(params) = self.params else { return SharedFraming::Untouched };
        if len < self.settings.threshold {
            return SharedFraming::Untouched;
        }
        if !params.compress_no_context_takeover() {
            return SharedFraming::PerConnection;
        }
        SharedFraming::Encoded(self.compressor_key(params).pack())
    }

    /// See [`Extension::encode_shared`]: the message compressed from a fresh context (a
    /// compressor from the pool, or a new one), as [`shared`](Self::shared)'s key says.
    pub(super) fn encode_whole(&self, key: u64, data: &[u8]) -> Result<(Rsv, Bytes), ExtensionError> {
        let key = CompressorKey::unpack(key).ok_or_else(|| {
            ExtensionError::new(CloseCode::INTERNAL_ERROR, "not a permessage-deflate sharing key")
        })?;
        let pool = self.pool.as_ref();
        let (mut compressor, _) = pool
            .and_then(|pool| pool.take_compressor(key, None))
            .unwrap_or_else(|| (Compressor::new(key), false));
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        let ending = compressor.compress(data, &mut out)?;
        end_message(&mut out, ending);
        if let Some(pool) = pool {
            pool.give_compressor(compressor, None);
        }
        Ok((Rsv::RSV1, into_bytes(out)))
    }
}
