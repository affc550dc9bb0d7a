//! Two `gpt-4` deployments behind one OpenAI-compatible provider, on two
//! machines: what happens under a name-only identity (Dify's behaviour) and
//! under name + endpoint.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::error::Error;

use modelfleet::{Deployment, Policy, Registry};

fn node(ip: &str) -> Result<Deployment, Box<dyn Error>> {
    Ok(Deployment::builder("openai-api-compatible", "gpt-4")
        .endpoint(&format!("http://{ip}/v1"))
        .build()?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let node1 = node("192.168.0.1")?;
    let node2 = node("192.168.0.2")?;

    // 1. Name only: the identity is provider + model, so the second
    //    deployment overrides the first.
    println!(
        "Policy `{}`: provider + model is the identity",
        Policy::NAME
    );
    let mut by_name = Registry::new(Policy::NAME);
    for deployment in [node1.clone(), node2.clone()] {
        let shown = deployment.to_string();
        match by_name.upsert(deployment) {
            Some(previous) => {
                println!("  upsert {shown}: overrides the previous value {previous}")
            }
            None => println!("  upsert {shown}: added"),
        }
    }
    println!("  {} deployment(s) kept:", by_name.len());
    for (key, deployment) in &by_name {
        println!("    {key} -> {deployment}");
    }

    // 2. insert refuses what upsert would override, and says why.
    println!();
    println!("Policy `{}`, insert instead of upsert", Policy::NAME);
    match by_name.insert(node1.clone()) {
        Ok(key) => println!("  insert {node1}: added as {key}"),
        Err(e) => println!("  insert {node1}: rejected\n    error: {e}"),
    }
    println!("  {} deployment(s) kept", by_name.len());

    // 3. Name + endpoint: the two machines are two deployments.
    println!();
    println!(
        "Policy `{}`: the endpoint is part of the identity",
        Policy::NAME_ENDPOINT
    );
    let mut fleet = Registry::new(Policy::NAME_ENDPOINT);
    fleet.insert(node1.clone())?;
    fleet.insert(node2.clone())?;
    println!("  {} deployment(s) kept:", fleet.len());
    for key in fleet.keys() {
        println!("    {key}");
    }
    println!(
        "  candidates for a request for gpt-4: {}",
        fleet.of_model("gpt-4").count()
    );

    // 4. Going back to name only would merge them: the collision is
    //    reported and nothing is lost.
    println!();
    println!(
        "Rekey from `{}` back to `{}`",
        Policy::NAME_ENDPOINT,
        Policy::NAME
    );
    match fleet.rekey(Policy::NAME) {
        Ok(rekeyed) => println!("  rekeyed: {} deployment(s)", rekeyed.len()),
        Err(modelfleet::Error::Collisions {
            policy, collisions, ..
        }) => {
            println!(
                "  rejected: {} key(s) would collide under `{policy}`",
                collisions.len()
            );
            for collision in &collisions {
                println!("    {} would be shared by:", collision.key());
                for key in collision.deployments() {
                    println!("      {key}");
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    println!(
        "  nothing lost: still {} deployment(s) under `{}`",
        fleet.len(),
        fleet.policy()
    );
    Ok(())
}
