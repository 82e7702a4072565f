// Package image is the oci driver's image store on one agent: it pulls images
// from registries (go-containerregistry; basic or bearer auth; plain HTTP only
// for loopback registries or those the agent allows), verifies every digest
// (manifest, compressed layer blobs, uncompressed diff_ids), unpacks layers
// once into a content-addressed cache shared by every image and task on the
// node (OCI whiteouts converted to overlayfs form), builds each container's
// root filesystem as an overlay mount over the shared layers, and
// garbage-collects layers no image uses.
//
// Layout under the store's directory:
//
//	layers/sha256/<diff_id hex>/fs   an unpacked layer (lowerdir), shared
//	layers/sha256/<diff_id hex>/size its unpacked size in bytes
//	images/<manifest hex>.json       a pulled image: refs, config, layer diff_ids
//	containers/<id>/{upper,work,rootfs,image}  a container's overlay and the
//	                                 digest of its image (the reference that
//	                                 keeps the image and its layers alive)
//	tmp/                             unpacks in progress; removed at Open and GC
//
// It is not a runtime: it does not create namespaces or run processes (the
// driver does), and it imports nothing of dcos outside drivers/oci.
package image
