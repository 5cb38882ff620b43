/// The reducers of the catalog that refuse bucketed reduction (`--overlap`), each with its
/// reason (docs/overlap.md lists them).
extension LGreCo {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its rank plan divides one error budget among all the model's tensors at once, "
                     + "and a re-plan changes the ranks of the whole list in one broadcast")
    }
}

extension PowerSGDPlus {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its subspace refresh replaces a power step of the whole list (one fp32 all-reduce "
                     + "of every tensor and an SVD per matrix); a refresh per bucket is not implemented")
    }
}

extension ExactSVDReducer {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its exchange all-gathers the factors of every matrix in one message; "
                     + "a bucketed exchange is not implemented")
    }
}

extension LQSGD {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its quantized factor exchange covers the whole list at once; a bucketed exchange is not implemented")
    }
}

extension DeepGradientCompression {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its momentum correction and sparse exchange run over the whole list at once; "
                     + "a bucketed exchange is not implemented")
    }
}

extension MajorityVoteReducer {
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "its vote exchanges the signs of the whole list in one all-gather; a bucketed vote is not implemented")
    }
}
