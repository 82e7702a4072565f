// Package oci is the built-in task driver that runs container images: it
// pulls an image from a registry into a content-addressed layer cache on
// the node (package internal/image), mounts an overlayfs root for each task
// over the shared layers, and runs the image's entrypoint in it under the
// SDK's executor (sdk/plugin.Executor) in container mode: pid 1 of new
// mount, pid, uts and ipc namespaces after pivot_root, in the task's
// cgroups, network namespace and sandbox.
//
// It is written only against sdk/plugin, as a vendor's driver would be (a
// test checks its imports), and is served by `dcosd plugin oci`.
//
// A task's DriverConfig is JSON (see Config):
//
//	{"image": "registry.example.com/nginx:1.22", "readonly_root": true}
//
// TaskConfig.Command, when set, replaces the image's entrypoint and
// TaskConfig.Args its cmd (Kubernetes' command/args). It is not the image
// builder, nor a registry.
package oci
