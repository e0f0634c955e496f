//! Attacks on the host's time, stack and memory, and a crash midway.
//!
//!     nsw run hostile_exhaust.wasm -- loop|recursion|memory|trap-midway|carrier|slow-ping
//!
//! `carrier`: 60 veth pairs with both ends up, then one end of each
//! moved away (down), then a ping: nothing is left to wait a carrier for.
//! `slow-ping`: 100 echo requests to a neighbour that never answers, 10 s
//! each. Both must end at
//! the deadline like any loop.
//! `slow-service [FUNCTIONS STEPS SALT]`: a service whose component takes
//! many seconds to compile (megabytes of code, made here; 4 × 300000 took
//! 27 s on a 2-core machine); the run must still end at the deadline, not
//! when compiling does.

use nsw_sdk::{Guest, address, probe, service, topology};

struct Attack;

#[inline(never)]
fn deeper(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    // Keep a frame on the stack at every level.
    let frame = std::hint::black_box([n; 16]);
    deeper(n + 1) + frame[3]
}

impl Guest for Attack {
    fn run(args: Vec<String>) -> Result<(), String> {
        match args.first().map(String::as_str) {
            Some("loop") => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("recursion") => Err(format!("{}", deeper(0))),
            Some("memory") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("trap-midway") => {
                let host = topology::host();
                let node = topology::create_netns("half")?;
                let (inside, outside) = topology::create_veth("h-in", &node, "h-out", &host)?;
                address::add(&inside, "10.66.0.2/24")?;
                let bridge = topology::create_bridge("hbr", &host)?;
                topology::set_master(&outside, &bridge)?;
                println!("half built");
                std::process::abort()
            }
            Some("carrier") => {
                let host = topology::host();
                let away = topology::create_netns("away")?;
                let mut far = Vec::new();
                for i in 0..60 {
                    let (a, b) = topology::create_veth(&format!("c{i}"), &host, &format!("d{i}"), &host)?;
                    topology::set_up(&a)?;
                    topology::set_up(&b)?;
                    far.push(b);
                }
                for b in &far {
                    topology::move_link(b, &away)?;
                }
                loop {
                    probe::ping(&host, "127.0.0.1", probe::PingOptions { count: 1, timeout_ms: 10 })?;
                }
            }
            Some("slow-ping") => {
                // A neighbour that never answers: each echo waits its 10 s.
                let host = topology::host();
                let (a, b) = topology::create_veth("sp0", &host, "sp1", &host)?;
                address::add(&a, "10.99.0.1/24")?;
                topology::set_up(&a)?;
                topology::set_up(&b)?;
                probe::ping(&host, "10.99.0.2", probe::PingOptions { count: 100, timeout_ms: 10_000 })?;
                Err("the ping ended early".into())
            }
            Some("slow-service") => {
                let node = topology::create_netns("svc")?;
                let number = |at: usize, default: u32| args.get(at).and_then(|n| n.parse().ok()).unwrap_or(default);
                // A salt of the caller's makes the component new to nsw's
                // compiled cache.
                let component = slow_to_compile(number(1, 4), number(2, 300_000), number(3, 0));
                println!("starting a service of {} bytes", component.len());
                service::start(&node, "slow", &component, &[])?;
                Err("the service started before the deadline".into())
            }
            other => Err(format!("unknown case {other:?}")),
        }
    }
}

/// A component holding one core module of `functions` functions, each
/// a chain of `steps` steps of arithmetic the compiler works through.
fn slow_to_compile(functions: u32, steps: u32, salt: u32) -> Vec<u8> {
    const LIVE: u32 = 400;
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, Module, ModuleSection, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut declared = FunctionSection::new();
    let mut code = CodeSection::new();
    for f in 0..functions {
        declared.function(0);
        // Hundreds of values live across a loop: the register allocator's
        // work grows with both.
        let mut body = Function::new([(LIVE, ValType::I32)]);
        body.instruction(&Instruction::Loop(wasm_encoder::BlockType::Empty));
        let mut seed = (f ^ salt).wrapping_mul(2_654_435_761) | 1;
        let mut pick = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            1 + seed % LIVE
        };
        for _ in 0..steps {
            let (a, b, c) = (pick(), pick(), pick());
            body.instruction(&Instruction::LocalGet(a));
            body.instruction(&Instruction::LocalGet(b));
            body.instruction(&Instruction::I32Add);
            body.instruction(&Instruction::LocalSet(c));
        }
        body.instruction(&Instruction::LocalGet(0));
        body.instruction(&Instruction::BrIf(0));
        body.instruction(&Instruction::End);
        body.instruction(&Instruction::LocalGet(1));
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut module = Module::new();
    module.section(&types).section(&declared).section(&code);
    let mut component = wasm_encoder::Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

nsw_sdk::export!(Attack);
