//! A replica whose image is not on its node: the node pulls it from a
//! registry (Debian's `docker-registry` on the worker's loopback, standing
//! in for Docker Hub) on a task of its own, and the replica then answers
//! through the mesh like any other; an image the registry lacks is refused
//! at deploy.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode, BUSYBOX_IMAGE};
use warren_netns_tests::{start_registry, wait_for_value};

#[test]
fn a_node_pulls_an_image_it_lacks_and_the_replica_serves() {
    let cluster = Cluster::new("pull").unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    let registry = start_registry(&cluster.lab, &vm.worker.host.ns, 5000).unwrap();
    let image = registry.image("busybox:1");
    // The image goes to the registry and leaves the node.
    for step in [
        &["tag", BUSYBOX_IMAGE, &image][..],
        &["push", &image],
        &["rmi", &image],
    ] {
        vm.dockerd.docker(step).unwrap();
    }
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();

    // An image the registry does not have is refused before anything is
    // stored, with the node and the daemon's reason.
    let mut unknown = deploy_httpd_args("nope", 1, &[]);
    unknown[3] = registry.image("nope:1");
    let out = cluster.admin_output(&unknown).unwrap();
    let line = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(4)
            && line.contains("node vm cannot get the image")
            && line.trim().lines().count() == 1,
        "{:?}: {line}",
        out.status
    );
    assert!(cluster.replicas().unwrap().is_empty());

    let mut deploy = deploy_httpd_args("web", 1, &["--health-http", "/", "--wait"]);
    deploy[3].clone_from(&image);
    let out = cluster.admin_output(&deploy).unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{progress}\n{}",
        vm.agent_log_tail(30)
    );
    let agent_log = vm.agent().unwrap().log();
    assert!(
        agent_log.contains("pulling an image") && agent_log.contains("image pulled"),
        "{}",
        vm.agent_log_tail(30)
    );
    assert!(
        vm.dockerd.docker(&["image", "inspect", &image]).is_ok(),
        "the image is on the node now"
    );
    // The pulled replica serves through the mesh.
    let replicas = cluster.replicas().unwrap();
    let address = replicas[0]["addresses"][0].as_str().unwrap().to_owned();
    let answer = wait_for_value("the replica answering", Duration::from_secs(20), || {
        cluster
            .control
            .ns
            .exec(["busybox", "wget", "-qO-", &format!("http://{address}/")])
            .ok()
    })
    .unwrap();
    assert!(!answer.trim().is_empty(), "{answer:?}");
}
