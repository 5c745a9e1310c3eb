//! The compression codec as the connection sees it: permessage-deflate when the `deflate`
//! feature is on, and uninhabited stand-ins otherwise so the connection code has no `cfg`s.

#[cfg(feature = "deflate")]
pub(crate) use crate::deflate::{Compressor, Decompressor, InflateError};

#[cfg(not(feature = "deflate"))]
pub(crate) use stub::{Compressor, Decompressor, InflateError};

#[cfg(not(feature = "deflate"))]
mod stub {
    use bytes::BytesMut;

    /// No compressor can exist without the `deflate` feature.
    #[derive(Debug)]
    pub(crate) enum Compressor {}

    /// No decompressor can exist without the `deflate` feature.
    #[derive(Debug)]
    pub(crate) enum Decompressor {}

    #[derive(Debug)]
    #[allow(dead_code)] // mirrors the real error; never built without the codec
    pub(crate) enum InflateError {
        TooLarge,
        Corrupt,
    }

    impl Compressor {
        pub(crate) fn compress(&mut self, _: &[u8], _: bool, _: &mut BytesMut) -> Result<(), ()> {
            match *self {}
        }
        pub(crate) fn reset(&mut self) {
            match *self {}
        }
        pub(crate) fn window_bits(&self) -> u8 {
            match *self {}
        }
        pub(crate) fn threshold(&self) -> usize {
            match *self {}
        }
    }

    impl Decompressor {
        pub(crate) fn inflate(
            &mut self,
            _: &[u8],
            _: Option<([u8; 4], &mut usize)>,
            _: &mut BytesMut,
            _: usize,
        ) -> Result<(), InflateError> {
            match *self {}
        }
        pub(crate) fn finish(&mut self, _: &mut BytesMut, _: usize) -> Result<(), InflateError> {
            match *self {}
        }
    }
}
