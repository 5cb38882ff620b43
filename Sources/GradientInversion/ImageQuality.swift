import Foundation

/// Reconstruction quality on images scaled to [0, 1] (data range L = 1), `[C, H, W]`.
public enum ImageQuality {
    /// 10·log10(L² / MSE) over all pixels and channels; +∞ for identical images.
    public static func psnr(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty, "images of the same size")
        var sum = 0.0
        for i in a.indices { let d = Double(a[i]) - Double(b[i]); sum += d * d }
        let mse = sum / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(1 / mse)
    }

    /// SSIM as Wang, Bovik, Sheikh, Simoncelli (2004): an 11×11 Gaussian window (σ = 1.5),
    /// C1 = (0.01·L)², C2 = (0.03·L)², local means, variances and covariance weighted by the
    /// window, averaged over every window position that fits inside the image and over channels.
    public static func ssim(_ a: [Float], _ b: [Float], channels: Int, height: Int, width: Int) -> Double {
        precondition(a.count == channels * height * width && b.count == a.count, "images of the given shape")
        let size = min(11, height, width), sigma = 1.5
        let half = Double(size - 1) / 2
        var window = (0..<size).map { exp(-pow(Double($0) - half, 2) / (2 * sigma * sigma)) }
        let total = window.reduce(0, +)
        window = window.map { $0 / total }
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        var sum = 0.0, positions = 0
        for c in 0..<channels {
            let base = c * height * width
            for top in 0...(height - size) {
                for left in 0...(width - size) {
                    var ma = 0.0, mb = 0.0, aa = 0.0, bb = 0.0, ab = 0.0
                    for i in 0..<size {
                        for j in 0..<size {
                            let w = window[i] * window[j]
                            let x = Double(a[base + (top + i) * width + left + j]), y = Double(b[base + (top + i) * width + left + j])
                            ma += w * x; mb += w * y; aa += w * x * x; bb += w * y * y; ab += w * x * y
                        }
                    }
                    let va = aa - ma * ma, vb = bb - mb * mb, cov = ab - ma * mb
                    sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
                    positions += 1
                }
            }
        }
        return sum / Double(positions)
    }
}
