//! Audio in and out: any WAV, FLAC, MP3 or Ogg Vorbis file decoded (symphonia) to mono and
//! resampled (rubato) to the rate a model needs; synthesized samples written as a 16-bit WAV.

#[cfg(feature = "stt")]
pub(crate) use decode::{decode_mono, probe};

/// A mono 16-bit PCM WAV file of `samples` (-1.0..=1.0, clipped) at `rate` Hz.
#[cfg_attr(not(feature = "tts"), allow(dead_code))]
pub(crate) fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_bytes = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_bytes.to_le_bytes());
    for sample in samples {
        let value = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

#[cfg(feature = "stt")]
mod decode {
    use std::io::Cursor;

    use rubato::{FftFixedIn, Resampler};
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
    use symphonia::core::errors::Error as AudioError;
    use symphonia::core::formats::{FormatOptions, FormatReader};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    use crate::voice::VoiceError;

    const FORMATS: &str = "WAV, FLAC, MP3 or Ogg Vorbis";

    /// Decoded audio, mono.
    #[derive(Debug)]
    pub(crate) struct Decoded {
        pub samples: Vec<f32>,
        pub rate: u32,
    }

    impl Decoded {
        pub fn seconds(&self) -> f64 {
            self.samples.len() as f64 / f64::from(self.rate.max(1))
        }
    }

    fn open(bytes: &[u8]) -> Result<(Box<dyn FormatReader>, u32, u32), VoiceError> {
        let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
        let probed = symphonia::default::get_probe()
            .format(
                &Hint::new(),
                source,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|error| {
                VoiceError::Invalid(format!(
                    "the data is not an audio file agentos can read ({error}); send {FORMATS} (PCM WAV is always fine)"
                ))
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| VoiceError::Invalid("the audio file holds no audio track".into()))?;
        let rate = track
            .codec_params
            .sample_rate
            .ok_or_else(|| VoiceError::Invalid("the audio file does not say its sample rate".into()))?;
        let id = track.id;
        Ok((format, rate, id))
    }

    /// Checks that `bytes` is audio agentos can decode, without decoding it: cheap enough to run
    /// before a job waits for a slot. Returns its length in seconds when the file says.
    pub(crate) fn probe(bytes: &[u8]) -> Result<Option<f64>, VoiceError> {
        let (format, rate, id) = open(bytes)?;
        let track = format.tracks().iter().find(|t| t.id == id);
        let params = track.map(|t| &t.codec_params);
        if let Some(params) = params {
            symphonia::default::get_codecs()
                .make(params, &DecoderOptions::default())
                .map_err(|error| unsupported(&error))?;
        }
        Ok(params
            .and_then(|p| p.n_frames)
            .map(|frames| frames as f64 / f64::from(rate.max(1))))
    }

    fn unsupported(error: &AudioError) -> VoiceError {
        VoiceError::Invalid(format!(
            "unsupported audio encoding ({error}); send {FORMATS} (PCM WAV is always fine)"
        ))
    }

    /// Decodes `bytes` to mono at `rate` Hz, refusing audio longer than `max_seconds` as soon
    /// as that much has been decoded.
    pub(crate) fn decode_mono(bytes: &[u8], rate: u32, max_seconds: f64) -> Result<Decoded, VoiceError> {
        let (mut format, source_rate, id) = open(bytes)?;
        let params = format
            .tracks()
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.codec_params.clone())
            .ok_or_else(|| VoiceError::Invalid("the audio file holds no audio track".into()))?;
        let mut decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|error| unsupported(&error))?;
        let max_samples = (max_seconds * f64::from(source_rate)) as usize;
        let mut mono: Vec<f32> = Vec::new();
        loop {
            let packet = match format.next_packet() {
                Ok(packet) => packet,
                Err(AudioError::IoError(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(AudioError::ResetRequired) => break,
                Err(error) => return Err(VoiceError::Invalid(format!("the audio file is damaged: {error}"))),
            };
            if packet.track_id() != id {
                continue;
            }
            let decoded = match decoder.decode(&packet) {
                Ok(decoded) => decoded,
                // A damaged packet is skipped, as players do.
                Err(AudioError::DecodeError(_)) => continue,
                Err(error) => return Err(VoiceError::Invalid(format!("the audio file is damaged: {error}"))),
            };
            let spec = *decoded.spec();
            let channels = spec.channels.count().max(1);
            let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
            buffer.copy_interleaved_ref(decoded);
            mono.extend(
                buffer
                    .samples()
                    .chunks(channels)
                    .map(|frame| frame.iter().sum::<f32>() / channels as f32),
            );
            if mono.len() > max_samples {
                return Err(VoiceError::TooLong {
                    seconds: mono.len() as f64 / f64::from(source_rate),
                    max: max_seconds,
                });
            }
        }
        if mono.is_empty() {
            return Err(VoiceError::Invalid("the audio file holds no sound (0 samples)".into()));
        }
        let samples = resample(mono, source_rate, rate)?;
        Ok(Decoded { samples, rate })
    }

    /// `samples` at `from` Hz as the same sound at `to` Hz.
    fn resample(samples: Vec<f32>, from: u32, to: u32) -> Result<Vec<f32>, VoiceError> {
        if from == to {
            return Ok(samples);
        }
        let failed = |error: &dyn std::fmt::Display| VoiceError::Failed(format!("resampling failed: {error}"));
        const CHUNK: usize = 1024;
        let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1).map_err(|e| failed(&e))?;
        let expected = (samples.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
        let delay = resampler.output_delay();
        let mut out = Vec::with_capacity(expected + delay + CHUNK);
        let mut chunks = samples.chunks_exact(CHUNK);
        for chunk in chunks.by_ref() {
            let done = resampler.process(&[chunk], None).map_err(|e| failed(&e))?;
            out.extend_from_slice(&done[0]);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let done = resampler.process_partial(Some(&[rest]), None).map_err(|e| failed(&e))?;
            out.extend_from_slice(&done[0]);
        }
        // Flush what the resampler's delay still holds.
        while out.len() < expected + delay {
            let done = resampler
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| failed(&e))?;
            if done[0].is_empty() {
                break;
            }
            out.extend_from_slice(&done[0]);
        }
        let end = (delay + expected).min(out.len());
        Ok(out.get(delay..end).map(<[f32]>::to_vec).unwrap_or_default())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn tone(rate: u32, seconds: f64) -> Vec<f32> {
            (0..(f64::from(rate) * seconds) as usize)
                .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5)
                .collect()
        }

        #[test]
        fn a_wav_round_trips_and_is_resampled_to_the_asked_rate() {
            let wav = crate::voice::audio::wav(&tone(22_050, 1.0), 22_050);
            assert_eq!(probe(&wav).unwrap(), Some(1.0));
            let decoded = decode_mono(&wav, 16_000, 10.0).unwrap();
            assert_eq!(decoded.rate, 16_000);
            assert_eq!(decoded.samples.len(), 16_000);
            // Still a 440 Hz tone of the same loudness: resampling kept the signal.
            let peak = decoded.samples.iter().fold(0f32, |m, s| m.max(s.abs()));
            assert!((0.45..0.55).contains(&peak), "peak {peak}");
        }

        #[test]
        fn too_long_not_audio_and_empty_are_refused_with_what_to_send() {
            let wav = crate::voice::audio::wav(&tone(16_000, 3.0), 16_000);
            let long = decode_mono(&wav, 16_000, 2.0);
            assert!(matches!(long, Err(VoiceError::TooLong { .. })), "{:?}", long.err());
            let text = probe(b"hello, this is not audio at all").unwrap_err().to_string();
            assert!(text.contains("not an audio file") && text.contains("WAV"), "{text}");
            let silent = crate::voice::audio::wav(&[], 16_000);
            let empty = decode_mono(&silent, 16_000, 2.0).unwrap_err().to_string();
            assert!(empty.contains("no sound"), "{empty}");
        }
    }
}
