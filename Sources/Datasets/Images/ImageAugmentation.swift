import LinearAlgebra

/// CIFAR's standard training augmentation for one image: a random H×W crop of the image padded
/// by `padding` zero pixels on every side, then a horizontal flip with probability ½.
///
/// A crop of the padded image at offset (padding + dy, padding + dx) is the image shifted by
/// (dy, dx) with zeros where it leaves the frame, so no padded copy is ever built: output pixel
/// (y, x) reads source pixel (y + dy, x' + dx), x' = W − 1 − x when flipped, else x.
public struct ImageAugmentation: Sendable, Hashable {
    /// Row shift in −padding…padding.
    public var dy: Int
    /// Column shift in −padding…padding.
    public var dx: Int
    /// Mirror left–right (applied to the output coordinates, after the crop).
    public var flip: Bool

    public init(dy: Int, dx: Int, flip: Bool) {
        self.dy = dy
        self.dx = dx
        self.flip = flip
    }

    /// No change.
    public static let identity = ImageAugmentation(dy: 0, dx: 0, flip: false)

    /// The augmentation of example `index` in `epoch`: one Philox block keyed by (seed, epoch),
    /// counter = index, so it does not depend on which worker or batch position gets the example.
    /// Words 0 and 1 give the shifts (`% (2·padding + 1)`: bias below 2⁻²⁸), word 2's low bit the flip.
    public static func drawn(seed: UInt64, epoch: Int, index: Int, padding: Int) -> ImageAugmentation {
        let r = Philox(seed: seed, stream: Philox.stream(0x4155_4720, UInt64(epoch))).block(UInt64(index))
        let span = UInt32(2 * padding + 1)
        return ImageAugmentation(dy: Int(r[0] % span) - padding, dx: Int(r[1] % span) - padding, flip: r[2] & 1 == 1)
    }

    /// Writes the augmented image `[C, H, W]` from `source` to `target`, mapping each kept source
    /// value through `value(v, channel)` and filling pixels from outside the frame with `fill[channel]`.
    @inlinable
    public func apply<Element>(_ source: UnsafeBufferPointer<Element>, to target: UnsafeMutableBufferPointer<Float>,
                               channels: Int, height: Int, width: Int, fill: [Float],
                               value: (Element, Int) -> Float) {
        precondition(source.count >= channels &* height &* width && target.count >= channels &* height &* width,
                     "ImageAugmentation.apply: buffers smaller than \(channels)×\(height)×\(width)")
        for ch in 0..<channels {
            let plane = ch &* height &* width
            for y in 0..<height {
                let sy = y &+ dy
                let row = plane &+ y &* width
                guard sy >= 0 && sy < height else {
                    for x in 0..<width { target[row &+ x] = fill[ch] }
                    continue
                }
                let sourceRow = plane &+ sy &* width
                for x in 0..<width {
                    let sx = (flip ? width &- 1 &- x : x) &+ dx
                    target[row &+ x] = (sx >= 0 && sx < width) ? value(source[sourceRow &+ sx], ch) : fill[ch]
                }
            }
        }
    }

    /// The augmented copy of a float image `[C, H, W]` (zero fill): the form tests and callers
    /// holding already-normalized images use.
    public func applied(to image: [Float], channels: Int, height: Int, width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: image.count)
        image.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { t in
                apply(s, to: t, channels: channels, height: height, width: width,
                      fill: [Float](repeating: 0, count: channels)) { v, _ in v }
            }
        }
        return out
    }
}
