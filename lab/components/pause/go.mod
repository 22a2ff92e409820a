// Module pause builds the lab's pod sandbox process: standard library only.
module kubeboot.dev/lab/components/pause

go 1.24.0
