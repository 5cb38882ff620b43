/// The sizes of one convolution on a channel-major `[C, B, H, W]` input.
public struct ConvolutionGeometry: Sendable {
    public let channels: Int, batch: Int, height: Int, width: Int
    public let kernel: Int, stride: Int, padding: Int
    public let outHeight: Int, outWidth: Int
    public var plane: Int { height * width }
    public var outPlane: Int { outHeight * outWidth }

    public init(channels: Int, batch: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int,
                outHeight: Int, outWidth: Int) {
        self.channels = channels; self.batch = batch; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.outHeight = outHeight; self.outWidth = outWidth
    }

    /// The output columns x' whose input column x'·s − p + kx lies inside the image.
    @inline(__always)
    func validColumns(kx: Int) -> Range<Int> {
        // x'·s − p + kx ≥ 0  ⇔  x' ≥ ⌈(p − kx)/s⌉ ;  x'·s − p + kx ≤ W − 1  ⇔  x' ≤ ⌊(W − 1 + p − kx)/s⌋
        let lowNumerator = padding - kx
        let low = lowNumerator <= 0 ? 0 : (lowNumerator + stride - 1) / stride
        let highNumerator = width - 1 + padding - kx
        let high = highNumerator < 0 ? 0 : min(outWidth, highNumerator / stride + 1)
        return low..<max(low, high)
    }
}

/// im2col and its adjoint over a block of images in the channel-major layout.
///
/// `col` row `(c, ky, kx)` holds, for each image b of the block and output pixel (y', x'),
/// the input value at (y'·s − p + ky, x'·s − p + kx), zero outside the image. Rows of
/// different channels are independent, so both directions split the channels over threads.
public enum Im2col {
    public static func gather(_ x: UnsafePointer<Float>, _ g: ConvolutionGeometry, firstImage: Int, images: Int,
                       into col: UnsafeMutablePointer<Float>, threads: Int) {
        let shared = SharedPointer(col), source = SharedPointer(x)
        parallelRanges(g.channels, threads: threads) { channels in
            let col = shared.base, x = UnsafePointer(source.base)
            let k = g.kernel, s = g.stride, p = g.padding, wo = g.outWidth, w = g.width
            let rowLength = images &* g.outPlane
            for c in channels {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let valid = g.validColumns(kx: kx)
                        var dst = col + ((c &* k &+ ky) &* k &+ kx) &* rowLength
                        for b in firstImage..<(firstImage &+ images) {
                            let image = x + (c &* g.batch &+ b) &* g.plane
                            for oy in 0..<g.outHeight {
                                let iy = oy &* s &- p &+ ky
                                if iy < 0 || iy >= g.height || valid.isEmpty {
                                    dst.update(repeating: 0, count: wo)
                                } else {
                                    if valid.lowerBound > 0 { dst.update(repeating: 0, count: valid.lowerBound) }
                                    let src = image + (iy &* w &- p &+ kx)
                                    if s == 1 {
                                        (dst + valid.lowerBound).update(from: src + valid.lowerBound, count: valid.count)
                                    } else {
                                        for ox in valid { dst[ox] = src[ox &* s] }
                                    }
                                    if valid.upperBound < wo {
                                        (dst + valid.upperBound).update(repeating: 0, count: wo &- valid.upperBound)
                                    }
                                }
                                dst += wo
                            }
                        }
                    }
                }
            }
        }
    }

    /// `∂x += col2im(∂col)`: each patch entry is added back to the input pixel it was copied from.
    public static func scatterAdd(_ col: UnsafeMutablePointer<Float>, _ g: ConvolutionGeometry, firstImage: Int,
                           images: Int, into dx: UnsafeMutablePointer<Float>, threads: Int) {
        let source = SharedPointer(col), shared = SharedPointer(dx)
        parallelRanges(g.channels, threads: threads) { channels in
            let col = source.base, dx = shared.base
            let k = g.kernel, s = g.stride, p = g.padding, wo = g.outWidth, w = g.width
            let rowLength = images &* g.outPlane
            for c in channels {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let valid = g.validColumns(kx: kx)
                        if valid.isEmpty { continue }
                        var src = col + ((c &* k &+ ky) &* k &+ kx) &* rowLength
                        for b in firstImage..<(firstImage &+ images) {
                            let image = dx + (c &* g.batch &+ b) &* g.plane
                            for oy in 0..<g.outHeight {
                                let iy = oy &* s &- p &+ ky
                                if iy >= 0 && iy < g.height {
                                    let dst = image + (iy &* w &- p &+ kx)
                                    if s == 1 {
                                        for ox in valid { dst[ox] += src[ox] }
                                    } else {
                                        for ox in valid { dst[ox &* s] += src[ox] }
                                    }
                                }
                                src += wo
                            }
                        }
                    }
                }
            }
        }
    }
}
