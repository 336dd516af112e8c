//! Switchyard's HTTP/1.1 codec: the upstream side of the proxy, and the head tokenizer the
//! client side shares.
//!
//! Everything here is a pure function (or a small state machine) over byte buffers: no sockets,
//! no futures, no allocation on the common path beyond the caller's buffers. The proxy drives
//! an upstream exchange from the request's own task with these pieces:
//!
//! - [`encode_request_head`] writes a request line and header block into a buffer, with the
//!   framing header the body needs (`Content-Length` or `Transfer-Encoding: chunked`);
//! - [`parse_response_head`] tokenizes a response head in one pass (reading as `httparse`
//!   does) and decides its body
//!   framing by RFC 9112 §6.3, refusing what could be read two ways; the header fields come
//!   back as ranges of the read buffer: passed on as bytes by [`ResponseHead::client_fields`]
//!   (hop-by-hop fields left out), or turned into an [`http::HeaderMap`] without copying by
//!   [`ResponseHead::header_map`];
//! - [`tokenize_request`] tokenizes a request head the same way (the HTTP/1 server side and
//!   its framing guard read client requests with it);
//! - [`ChunkedDecoder`] walks a chunked body and points at its data, without copying it;
//! - [`encode_chunk`] and [`LAST_CHUNK`] write a chunked request body.
//!
//! The decoders are fuzzed against hyper's (see `fuzz/` at the crate root).

mod case;
mod chunked;
mod request;
mod response;
mod tokenize;

pub use case::is_lower;
pub use chunked::{ChunkError, ChunkedDecoder, Step};
pub use request::{
    BodyLength, ExtraField, LAST_CHUNK, encode_chunk, encode_request_head,
    encode_request_head_from, encode_request_head_lines,
};
pub use response::{
    BodyFraming, ClientField, ClientFields, HeadError, MAX_CONTENT_LENGTH, ParseOutcome,
    ResponseHead, parse_response_head,
};
pub use tokenize::{Refusal, RequestLine, tokenize_request};
