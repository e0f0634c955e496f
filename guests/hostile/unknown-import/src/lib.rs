//! Imports an interface nsw does not provide: refused before it runs.

wit_bindgen::generate!({
    inline: "
        package evil:lab;
        interface backdoor {
            open: func(path: string) -> string;
        }
        world attack {
            import backdoor;
            export run: func(args: list<string>) -> result<_, string>;
        }
    ",
});

struct Attack;

impl Guest for Attack {
    fn run(_args: Vec<String>) -> Result<(), String> {
        Ok(println!("{}", evil::lab::backdoor::open("/")))
    }
}

export!(Attack);
