//! A QR code as a PNG image: black modules on white, with the quiet zone
//! scanners need, a few pixels per module so a phone reads it off a screen.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module.
const SCALE: usize = 8;
/// Modules of white around the code (the standard's minimum).
const QUIET: usize = 4;

/// The PNG of `text`'s QR code, or why there is none (too long).
pub(crate) fn render(text: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| format!("QR code: {e}"))?;
    let modules = code.width();
    let side = (modules + 2 * QUIET) * SCALE;
    let colors = code.to_colors();
    // One byte per pixel, grey scale: 0 black, 255 white.
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (i % modules + QUIET, i / modules + QUIET);
        for dy in 0..SCALE {
            let row = (y * SCALE + dy) * side + x * SCALE;
            pixels[row..row + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side32 = u32::try_from(side).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(&mut out, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_becomes_a_png_of_whole_modules_with_a_quiet_zone() {
        let png = render("2@simulated,abc,1").expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().expect("info");
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % SCALE, 0);
        // Version 1 (21 modules: 17 bytes fit at level L), plus the quiet
        // zone.
        assert_eq!(info.width as usize / SCALE, 21 + 2 * QUIET);
        // A real WhatsApp code (about 160 characters) still renders.
        assert!(render(&"x".repeat(200)).is_ok());
    }
}
