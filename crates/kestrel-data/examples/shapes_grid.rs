//! Writes a grid of `shapes` samples and their masks to a PNG: `cargo run -p kestrel-data --example
//! shapes_grid -- OUT.png [classes]`.

use kestrel_data::{Shapes, ShapesConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "shapes_grid.png".into());
    let classes = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let ds = Shapes::new(ShapesConfig {
        n: 16,
        classes,
        ..ShapesConfig::default()
    })
    .expect("valid options");
    let s = ds.config().size as u32;
    let mut grid = image::RgbImage::new(8 * s, 4 * s);
    for i in 0..16 {
        let sample = ds.sample(i);
        let (x, y) = ((i % 8) as u32 * s, (i / 8) as u32 * 2 * s);
        image::imageops::replace(&mut grid, &sample.image, x as i64, y as i64);
        let mask = image::RgbImage::from_fn(s, s, |u, v| {
            let m = sample.mask.get_pixel(u, v).0[0] as u32;
            image::Rgb([(m * 30) as u8, (m * 30) as u8, (m * 30) as u8])
        });
        image::imageops::replace(&mut grid, &mask, x as i64, (y + s) as i64);
    }
    grid.save(&out).expect("writable output");
    println!(
        "{out}: labels {:?}",
        (0..16).map(|i| ds.labels()[i]).collect::<Vec<_>>()
    );
}
